"""The installation: `make install` (cmake --install of the tested build tree,
into a DESTDIR), `make uninstall`, the man pages against --help and the config
parser, and `make deb` (scripts/make-deb.sh) installed into a scratch root.

Nothing is written outside pytest's temporary directories (the build tree's
install_manifest.txt aside, which cmake --install always writes). The Debian
packages are installed with dpkg into an overlay of this machine's root
(copy-on-write, in a temporary directory; root and overlayfs needed, else
that part is skipped), where their maintainer scripts run for real.
"""
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import BIN, ROOT

BUILD = os.path.dirname(os.path.abspath(BIN))
MULTIARCH = subprocess.run(["gcc", "-print-multiarch"], capture_output=True,
                           text=True).stdout.strip()


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(cmd, **kw)


def ok(cmd, **kw):
    r = run(cmd, **kw)
    assert r.returncode == 0, f"{cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def version():
    return ok([BIN, "--version"]).stdout.split()[-1]


def commands():
    """The command names of `litesafe --help` (main.c's table)."""
    out = ok([BIN, "--help"]).stdout
    block = out.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    return [l.split()[0].rstrip(",") for l in block.splitlines()]


def sanitized():
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        return "LS_SANITIZE:BOOL=ON" in f.read()


def expected_files(prefix, libdir):
    v = version()
    files = {
        "bin/litesafe",
        f"{libdir}/liblitesafe.a",
        f"{libdir}/liblitesafe.so",
        f"{libdir}/liblitesafe.so.0",
        f"{libdir}/liblitesafe.so.{v}",
        f"{libdir}/pkgconfig/litesafe.pc",
        "include/litesafe.h",
        "include/litesafe_version.h",
        "include/litesafe/sys/storage.h",
        "lib/systemd/system/litesafe.service",
        "share/man/man1/litesafe.1",
        "share/man/man5/litesafe.yml.5",
        "share/bash-completion/completions/litesafe",
        "share/doc/litesafe/examples/litesafe.yml",
    }
    files |= {f"share/man/man1/litesafe-{c}.1" for c in commands()}
    return {f"{prefix}/{f}" for f in files}


def tree(root):
    """Every file and link under root, as absolute paths inside it."""
    out = set()
    for d, dirs, files in os.walk(root):
        for n in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            out.add("/" + os.path.relpath(os.path.join(d, n), root))
    return out


def cmake_install(root, prefix, saved):
    """cmake --install of the build tree into DESTDIR=root, its manifest copied
    to saved (as make install keeps it); the manifest's lines."""
    ok(["cmake", "--install", BUILD, "--prefix", prefix], env=dict(os.environ, DESTDIR=str(root)))
    shutil.copyfile(os.path.join(BUILD, "install_manifest.txt"), saved)
    with open(saved) as f:
        return [l for l in f.read().splitlines() if l]


def check_man(page, env=None, chroot=None):
    """man -l renders the page with no warning."""
    cmd = ["man", "--warnings", "-l", page]
    r = run(["chroot", chroot, *cmd] if chroot else cmd,
            env=dict(env or os.environ, MANWIDTH="80"))
    assert r.returncode == 0 and r.stderr == "", f"{page}: {r.stderr}"
    assert "NAME" in r.stdout and "litesafe" in r.stdout
    return r.stdout


def man_options(roff):
    """{--long: (short, arg, help)} of a page's OPTIONS section (its roff)."""
    text = roff.split(".SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]
    opts = {}
    for entry in text.split(".TP\n")[1:]:
        head, body = entry.split("\n", 1)
        head = head.replace("\\-", "-")
        m = re.fullmatch(r"(?:\\fB-(\w)\\fR, )?\\fB--([a-z0-9-]+)\\fR(?: \\fI(\S+)\\fR)?", head)
        assert m, f"cannot read option heading {head!r}"
        help_ = re.sub(r"\\f[BIR]", "", body.strip().replace("\\-", "-").replace("\\e", "\\"))
        opts["--" + m.group(2)] = (m.group(1), m.group(3), help_)
    return opts


def help_options(cmd):
    """{--long: (short, arg, help)} of `litesafe CMD --help`."""
    out = ok([BIN, cmd, "--help"]).stdout
    opts = {}
    for line in out.split("\noptions:\n", 1)[1].splitlines():
        m = re.fullmatch(r"  (?:-(\w), |    )(--[a-z0-9-]+)(?: (\S+))?\s{2,}(\S.*)", line)
        assert m, f"cannot read --help line {line!r}"
        opts[m.group(2)] = (m.group(1), m.group(3), re.sub(r"`([^`]*)`", r"\1", m.group(4)))
    return opts


def test_man_pages_match_help():
    """Every command has a page whose OPTIONS are exactly its --help's, both ways."""
    gen = os.path.join(BUILD, "docs-gen")
    for cmd in commands():
        with open(os.path.join(gen, f"litesafe-{cmd}.1")) as f:
            in_man = man_options(f.read())
        in_help = help_options(cmd)
        assert in_man.keys() - in_help.keys() == set(), f"{cmd}: only in the man page"
        assert in_help.keys() - in_man.keys() == set(), f"{cmd}: only in --help"
        assert in_man == in_help, cmd


def test_config_keys_in_manpage():
    """Every key the config parser knows (config_yaml.c's tables) is in litesafe.yml(5)."""
    with open(os.path.join(ROOT, "src", "replication", "config_yaml.c")) as f:
        src = f.read()
    keys = set(re.findall(r'ROW_\w+\((?:\w+, )?"([a-z0-9-]+)"', src))
    keys |= set(re.findall(r'\.key = "([a-z0-9-]+)"', src))
    assert len(keys) > 50 and {"dbs", "age", "recipients", "max-spool-size"} <= keys
    with open(os.path.join(ROOT, "man", "litesafe.yml.5")) as f:
        page = f.read().replace("\\-", "-")
    bold = set(re.findall(r"\\fB([a-z0-9.-]+)", page))
    bold |= set(re.findall(r"^\.BR? ([a-z0-9-]+)", page, re.M))
    bold |= {w for line in re.findall(r"^\.BR (.*)$", page, re.M) for w in re.findall(r"[a-z0-9-]+", line)}
    bold |= {k.split(".")[-1] for k in bold}  # logging.source
    missing = sorted(keys - bold)
    assert not missing, f"keys not in man/litesafe.yml.5: {missing}"


@pytest.mark.parametrize("prefix", ["/usr/local", "/usr"])
def test_install_and_uninstall(tmp_path, prefix):
    root = tmp_path / "root"
    saved = tmp_path / "installed-files.txt"
    manifest = cmake_install(root, prefix, saved)
    libdir = f"lib/{MULTIARCH}" if prefix == "/usr" and MULTIARCH else "lib"
    files = tree(root)
    assert files == expected_files(prefix, libdir)
    assert set(manifest) == files
    lib = f"{root}{prefix}/{libdir}"
    v = version()
    assert os.readlink(f"{lib}/liblitesafe.so") == "liblitesafe.so.0"
    assert os.readlink(f"{lib}/liblitesafe.so.0") == f"liblitesafe.so.{v}"
    assert "SONAME               liblitesafe.so.0" in ok(["objdump", "-p", f"{lib}/liblitesafe.so.{v}"]).stdout

    # the installed command runs without the build tree or a library path
    env = dict(os.environ, LD_LIBRARY_PATH="")
    r = ok([f"{root}{prefix}/bin/litesafe", "version"], env=env)
    assert r.stdout.startswith(f"litesafe {v} ")

    # every man page renders without a warning; the overview lists every command
    pages = sorted(f for f in files if "/share/man/" in f)
    for p in pages:
        text = check_man(f"{root}{p}")
        if p.endswith("/litesafe.1"):
            for c in commands():
                assert f"litesafe-{c}(1)" in text, c

    # the unit runs the installed binary; the .pc names the installed paths
    with open(f"{root}{prefix}/lib/systemd/system/litesafe.service") as f:
        unit = f.read()
    assert f"ExecStart={prefix}/bin/litesafe replicate -config /etc/litesafe.yml\n" in unit
    with open(f"{lib}/pkgconfig/litesafe.pc") as f:
        pc = f.read()
    assert f"prefix={prefix}\n" in pc and f"libdir={prefix}/{libdir}\n" in pc

    # examples/embed.c, built with pkg-config against the installed tree:
    # linked with the shared library, and statically (Requires.private/Libs.private)
    pkg_env = dict(os.environ, PKG_CONFIG_PATH=f"{lib}/pkgconfig", PKG_CONFIG_SYSROOT_DIR=str(root))
    cflags = ok(["pkg-config", "--cflags", "litesafe", "sqlite3"], env=pkg_env).stdout.split()
    libs = ok(["pkg-config", "--libs", "litesafe", "sqlite3"], env=pkg_env).stdout.split()
    assert f"-I{root}{prefix}/include" in cflags
    # Statically: liblitesafe.a, then what Requires.private and Libs.private name
    # (their own libraries shared: this system has no static libcurl's dependencies)
    private = ok(["pkg-config", "--print-requires-private", "litesafe"], env=pkg_env).stdout.split()
    assert set(private) == {"sqlite3", "openssl", "liblz4", "yaml-0.1", "libcurl", "libssh2"}
    static = ok(["pkg-config", "--libs", "litesafe", "sqlite3", *private], env=pkg_env).stdout.split()
    static = ["-l:liblitesafe.a" if a == "-llitesafe" else a for a in static]
    static += re.search(r"^Libs.private: (.*)$", pc, re.M).group(1).split()
    san = ["-fsanitize=address,undefined"] if sanitized() else []
    example = os.path.join(ROOT, "examples", "embed.c")
    for name, flags, ldpath in (("embed-shared", libs, lib), ("embed-static", static, "")):
        exe = str(tmp_path / name)
        ok(["cc", *san, *cflags, example, "-o", exe, *flags])
        needed = ok(["objdump", "-p", exe]).stdout
        assert ("NEEDED               liblitesafe.so.0" in needed) == (name == "embed-shared")
        work = tmp_path / (name + ".d")
        work.mkdir()
        ok([exe, str(work)], env=dict(os.environ, LD_LIBRARY_PATH=ldpath), timeout=120)

    # the bash completion: commands, a command's options, a mode's words
    comp = f"{root}{prefix}/share/bash-completion/completions/litesafe"

    def complete(*words):
        script = (f'source "{comp}"; COMP_WORDS=({" ".join(words)}); '
                  f"COMP_CWORD={len(words) - 1}; _litesafe; echo \"${{COMPREPLY[*]}}\"")
        return ok(["bash", "-c", script], cwd=tmp_path).stdout.split()

    assert complete("litesafe", "rest") == ["restore"]
    assert sorted(complete("litesafe", "")) == sorted(
        set(commands()) | {"bk", "cp", "snap", "help"})
    assert complete("litesafe", "restore", "--gen") == ["--generation"]
    assert complete("litesafe", "checkpoint", "-m", "tr") == ["truncate"]
    assert set(complete("litesafe", "replicate", "--")) == set(help_options("replicate"))

    # make uninstall's script with this install's manifest: nothing of it is left
    ok([os.path.join(ROOT, "scripts", "uninstall.sh"), str(saved), str(root)])
    assert tree(root) == set()
    left = [d for d, _, _ in os.walk(root) if "litesafe" in d[len(str(root)):]]
    assert left == []


def build_debs(out):
    r = ok([os.path.join(ROOT, "scripts", "make-deb.sh"), BUILD, str(out)])
    debs = r.stdout.split()
    assert sorted(os.path.basename(d).split("_")[0] for d in debs) == [
        "liblitesafe-dev", "liblitesafe0", "litesafe"]
    return {os.path.basename(d).split("_")[0]: d for d in debs}


def deb_files(deb):
    out = ok(["dpkg-deb", "--contents", deb]).stdout
    return {l.split()[5].lstrip(".") for l in out.splitlines() if not l.startswith("d")}


class Overlay:
    """A copy-on-write view of / in a temporary directory, to chroot into."""

    def __init__(self, base):
        self.base = base
        self.root = base / "merged"
        self.mounts = []

    def __enter__(self):
        for d in ("upper", "work", "merged"):
            (self.base / d).mkdir(parents=True)
        r = run(["mount", "-t", "overlay", "overlay", "-o",
                 f"lowerdir=/,upperdir={self.base}/upper,workdir={self.base}/work", str(self.root)])
        if r.returncode != 0:
            pytest.skip(f"no overlay of / here ({r.stderr.strip()}): the packages were checked "
                        "with dpkg-deb and dpkg -x only")
        self.mounts.append(self.root)
        for args, where in ((["--bind", "/dev"], "dev"), (["-t", "proc", "proc"], "proc"),
                            (["-t", "tmpfs", "tmpfs"], "run"), (["-t", "tmpfs", "tmpfs"], "tmp")):
            ok(["mount", *args, str(self.root / where)])
            self.mounts.append(self.root / where)
        return self

    def __exit__(self, *exc):
        for m in reversed(self.mounts):
            run(["umount", "-l", str(m)])

    def run(self, *cmd, **kw):
        return run(["chroot", str(self.root), *cmd], **kw)

    def ok(self, *cmd, **kw):
        return ok(["chroot", str(self.root), *cmd], **kw)


def test_deb(tmp_path):
    debs = build_debs(tmp_path / "debs")
    v = version()
    lib = f"/usr/lib/{MULTIARCH}"
    cli = deb_files(debs["litesafe"])
    assert {"/usr/bin/litesafe", "/etc/litesafe.yml", "/lib/systemd/system/litesafe.service",
            "/usr/share/bash-completion/completions/litesafe",
            "/usr/share/man/man5/litesafe.yml.5.gz", "/usr/share/man/man1/litesafe.1.gz",
            "/usr/share/doc/litesafe/copyright"} <= cli
    assert {f"/usr/share/man/man1/litesafe-{c}.1.gz" for c in commands()} <= cli
    assert {f"{lib}/liblitesafe.so.0", f"{lib}/liblitesafe.so.{v}"} <= deb_files(debs["liblitesafe0"])
    assert {f"{lib}/liblitesafe.so", f"{lib}/liblitesafe.a", f"{lib}/pkgconfig/litesafe.pc",
            "/usr/include/litesafe.h", "/usr/include/litesafe/sys/storage.h"} <= deb_files(
        debs["liblitesafe-dev"])
    info = ok(["dpkg-deb", "--info", debs["litesafe"]]).stdout
    assert "adduser" in info and "libsqlite3-0" in info
    assert ok(["dpkg-deb", "--ctrl-tarfile", debs["litesafe"]]).returncode == 0
    conffiles = ok(["sh", "-c", f"dpkg-deb --ctrl-tarfile {debs['litesafe']} | tar -xO ./conffiles"]).stdout
    assert conffiles == "/etc/litesafe.yml\n"

    # unpacked anywhere: the command runs, the pages render
    x = tmp_path / "x"
    for d in debs.values():
        ok(["dpkg", "-x", d, str(x)])
    ok([f"{x}/usr/bin/litesafe", "version"], env=dict(os.environ, LD_LIBRARY_PATH=""))
    for p in sorted(f for f in cli if "/man/" in f):
        check_man(f"{x}{p}")

    # lintian finds nothing (it knows Debian's policy; slow, but seconds)
    if shutil.which("lintian") and not sanitized():
        r = run(["lintian", "--suppress-tags", "running-with-root-privileges", *debs.values()])
        tags = [l for l in r.stdout.splitlines() if re.match(r"[EW]: ", l)]
        assert tags == [], "\n".join(tags)

    if os.geteuid() != 0:
        pytest.skip("not root: the packages were checked with dpkg-deb and dpkg -x only")
    with Overlay(tmp_path / "ovl") as o:
        install_in_chroot(o, debs, v)


def install_in_chroot(o, debs, v):
    """dpkg -i, use, dpkg --purge in the overlay; maintainer scripts run for real."""
    shutil.copytree(os.path.dirname(debs["litesafe"]), o.root / "tmp" / "debs")
    names = [f"/tmp/debs/{os.path.basename(d)}" for d in debs.values()]
    o.ok("dpkg", "-i", *names)
    assert o.ok("litesafe", "version").stdout.startswith(f"litesafe {v} ")
    for p in ("litesafe", "litesafe-replicate", "litesafe.yml"):
        assert "NAME" in o.ok("man", "--warnings", p, env=dict(os.environ, MANWIDTH="80")).stdout
    o.ok("getent", "passwd", "litesafe")
    wants = o.root / "etc/systemd/system/multi-user.target.wants/litesafe.service"
    assert os.readlink(wants) == "/lib/systemd/system/litesafe.service"
    o.ok("systemd-analyze", "verify", "/lib/systemd/system/litesafe.service")
    # the shipped configuration names no database: replicate refuses it (exit 2,
    # which the unit does not restart on)
    assert o.run("litesafe", "databases").returncode == 2

    # the service's command as its user, on a database in its state directory,
    # with the shipped socket path: status reaches it, SIGTERM ends it cleanly
    o.ok("install", "-d", "-o", "litesafe", "-g", "litesafe", "/var/lib/litesafe", "/run/litesafe")
    o.ok("setpriv", "--reuid", "litesafe", "--regid", "litesafe", "--init-groups", "sqlite3",
         "/var/lib/litesafe/app.db", "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    with open(o.root / "etc/litesafe.yml", "a") as f:
        f.write("dbs:\n  - path: /var/lib/litesafe/app.db\n"
                "    replicas:\n      - url: file:///var/lib/litesafe/replica\n")
    assert o.ok("litesafe", "databases").stdout.count("/var/lib/litesafe/app.db") == 1
    p = subprocess.Popen(["chroot", "--userspec=litesafe:litesafe", str(o.root), "/usr/bin/litesafe",
                          "replicate", "-config", "/etc/litesafe.yml"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):  # until the socket is up
            r = o.run("litesafe", "sync", "-wait", "-timeout", "30s", timeout=60)
            if r.returncode == 0 or p.poll() is not None:
                break
            time.sleep(0.1)
        assert r.returncode == 0, r.stderr
        assert "/var/lib/litesafe/app.db" in o.ok("litesafe", "status").stdout
    finally:
        p.terminate()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert os.path.isdir(o.root / "var/lib/litesafe/replica/generations")

    o.ok("dpkg", "--purge", "litesafe", "liblitesafe-dev", "liblitesafe0")
    for gone in ("usr/bin/litesafe", "etc/litesafe.yml", "var/lib/litesafe",
                 "lib/systemd/system/litesafe.service", f"usr/lib/{MULTIARCH}/liblitesafe.so.0"):
        assert not os.path.lexists(o.root / gone), gone
    assert not os.path.lexists(wants)
    assert o.run("dpkg", "-s", "litesafe").returncode != 0
