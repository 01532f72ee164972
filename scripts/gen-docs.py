#!/usr/bin/env python3
"""gen-docs.py - the man pages of the commands and the bash completion, from --help.

    gen-docs.py LITESAFE MANDIR OUTDIR

One source: each command's `--help` is printed from its cli_opt table
(cli/opts.c), and the command list from main.c's table. This runs the built
binary and writes, into OUTDIR:

  litesafe.1             MANDIR/litesafe.1.in with @COMMANDS@ (the command
                         table) and @VERSION@, @DATE@ filled in
  litesafe-CMD.1         per command: NAME (the table's summary), SYNOPSIS (the
                         usage lines), DESCRIPTION (the help's paragraph),
                         OPTIONS (the option table), then MANDIR/cmd/CMD.roff
                         if it exists (EXAMPLES, ...), EXIT STATUS, SEE ALSO
  litesafe.bash          the bash completion: commands, aliases, each
                         command's options, file names where a path is wanted

So neither the pages nor the completion can disagree with --help (the
installation test checks the installed pages against --help as well).
Dates: $SOURCE_DATE_EPOCH if set (reproducible builds), else today.
"""
import datetime
import os
import re
import subprocess
import sys

# Option values that name a file or directory: completed with file names.
PATH_ARGS = {"PATH", "DIR", "DB", "FILE"}
# Option values with a fixed set of words.
WORDS = {"mode": "passive full restart truncate", "log-level": "debug info warn error"}


def run(binary, *args):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    p = subprocess.run([binary, *args], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"gen-docs: {binary} {' '.join(args)}: exit {p.returncode}: {p.stderr}")
    return p.stdout


def parse_commands(text):
    """[(name, alias or None, summary)] from `litesafe --help`."""
    cmds, on = [], False
    for line in text.splitlines():
        if line == "commands:":
            on = True
        elif on and not line.strip():
            break
        elif on:
            m = re.match(r"^  ([a-z]+)(?:, ([a-z]+))?\s{2,}(\S.*)$", line)
            if not m:
                sys.exit(f"gen-docs: cannot read command line {line!r}")
            cmds.append((m.group(1), m.group(2), m.group(3)))
    if not cmds:
        sys.exit("gen-docs: no commands in litesafe --help")
    return cmds


def parse_help(text):
    """(usage lines, about paragraphs, [(short, long, arg, help)]) from CMD --help."""
    blocks = text.split("\n\n")
    usage = [l.strip() for l in blocks[0].splitlines()]
    usage[0] = usage[0].removeprefix("usage:").strip()
    about, opts = [], []
    for b in blocks[1:]:
        if b.startswith("options:\n"):
            for line in b.splitlines()[1:]:
                m = re.match(r"^  (?:-(\w), |    )--([a-z0-9-]+)(?: (\S+))?\s{2,}(\S.*)$", line)
                if not m:
                    sys.exit(f"gen-docs: cannot read option line {line!r}")
                opts.append(m.groups())
        else:
            about.append(" ".join(l.strip() for l in b.splitlines()))
    return usage, about, opts


def roff(text):
    """Plain text as roff: backslashes, dashes, `code` in bold, no leading dot."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r"`([^`]*)`", r"\\fB\1\\fR", text)
    return "\\&" + text if text[:1] in (".", "'") else text


def synopsis_roff(usage):
    out = []
    for u in usage:
        out.append(".br" if out else ".nf")
        out.append(roff(u))
    out.append(".fi")
    return "\n".join(out)


def option_roff(short, name, arg, text):
    left = (f"\\fB\\-{short}\\fR, " if short else "") + f"\\fB\\-\\-{name}\\fR"
    if arg:
        left += f" \\fI{roff(arg)}\\fR"
    return f".TP\n{left}\n{roff(text)}"


def command_page(name, alias, summary, helptext, extra, version, date):
    usage, about, opts = parse_help(helptext)
    lines = [
        f'.TH LITESAFE\\-{name.upper()} 1 "{date}" "litesafe {version}" "litesafe manual"',
        ".SH NAME",
        f"litesafe\\-{name} \\- {roff(summary)}",
        ".SH SYNOPSIS",
        synopsis_roff(usage),
        ".SH DESCRIPTION",
    ]
    if alias:
        about.append(f"`litesafe {alias}` is the same command.")
    for i, para in enumerate(about):
        if i:
            lines.append(".PP")
        lines.append(roff(para))
    lines.append(".PP\nLong options take one or two dashes (\\fB\\-config\\fR and "
                 "\\fB\\-\\-config\\fR); a value follows as the next word or after \\fB=\\fR.")
    lines.append(".SH OPTIONS")
    lines += [option_roff(*o) for o in opts]
    if extra:
        lines.append(extra.rstrip("\n"))
    lines += [
        ".SH EXIT STATUS",
        "0 success, 1 runtime failure, 2 usage or configuration error.",
        ".SH SEE ALSO",
        "\\fBlitesafe\\fR(1)"
        + (", \\fBlitesafe.yml\\fR(5)" if any(o[1] == "config" for o in opts) else ""),
    ]
    return "\n".join(lines) + "\n", opts


def command_list_roff(cmds):
    out = []
    for name, alias, summary in cmds:
        out.append(f".TP\n\\fBlitesafe\\-{name}\\fR(1)" + (f" (\\fB{alias}\\fR)" if alias else ""))
        out.append(roff(summary))
    return "\n".join(out)


def completion(cmds, opts_of):
    """The bash completion script: complete -F _litesafe litesafe."""
    names = " ".join(n for c in cmds for n in c[:2] if n)
    cases = []
    for name, alias, _ in cmds:
        opts = opts_of[name]
        words = " ".join(f"--{o[1]}" for o in opts) + " --json --quiet --help"
        path_opts = "|".join(f"--{o[1]}|-{o[1]}" + (f"|-{o[0]}" if o[0] else "")
                             for o in opts if o[2] in PATH_ARGS)
        value_opts = "|".join(f"--{o[1]}|-{o[1]}" + (f"|-{o[0]}" if o[0] else "")
                              for o in opts if o[2] and o[2] not in PATH_ARGS
                              and o[1] not in WORDS)
        pat = name + (f"|{alias}" if alias else "")
        body = []
        for o in opts:
            if o[1] in WORDS:
                short = f"|-{o[0]}" if o[0] else ""
                body.append(f'        --{o[1]}|-{o[1]}{short}) COMPREPLY=($(compgen -W "{WORDS[o[1]]}" -- "$cur")); return ;;')
        if path_opts:
            body.append(f"        {path_opts}) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;")
        if value_opts:
            body.append(f"        {value_opts}) return ;;")
        cases.append(f"    {pat})\n      opts=\"{words}\"\n      case $prev in\n"
                     + "\n".join(body + ["      esac"]) + "\n      ;;")
    return f"""# bash completion for litesafe (generated by scripts/gen-docs.py from litesafe --help)
_litesafe() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
  local i cmd="" opts=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${{COMP_WORDS[i]}} in
      -*) ;;
      *) cmd=${{COMP_WORDS[i]}}; break ;;
    esac
  done
  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "--json --quiet --help --version" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "{names} help" -- "$cur"))
    fi
    return
  fi
  case $cmd in
{chr(10).join(cases)}
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}}
complete -o filenames -F _litesafe litesafe
"""


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: gen-docs.py LITESAFE MANDIR OUTDIR")
    binary, mandir, outdir = sys.argv[1:]
    os.makedirs(outdir, exist_ok=True)
    version = run(binary, "--version").split()[-1]
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    day = (datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).date()
           if epoch else datetime.date.today())
    date = day.isoformat()
    cmds = parse_commands(run(binary, "--help"))
    opts_of = {}
    for name, alias, summary in cmds:
        extra_path = os.path.join(mandir, "cmd", f"{name}.roff")
        extra = open(extra_path).read() if os.path.exists(extra_path) else ""
        page, opts_of[name] = command_page(name, alias, summary, run(binary, name, "--help"),
                                           extra, version, date)
        write(os.path.join(outdir, f"litesafe-{name}.1"), page)
    with open(os.path.join(mandir, "litesafe.1.in")) as f:
        top = f.read()
    top = (top.replace("@COMMANDS@", command_list_roff(cmds)).replace("@VERSION@", version)
           .replace("@DATE@", date))
    write(os.path.join(outdir, "litesafe.1"), top)
    write(os.path.join(outdir, "litesafe.bash"), completion(cmds, opts_of))


def write(path, text):
    """Replace path only when the text changed (no needless rebuilds downstream)."""
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
