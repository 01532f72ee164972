#!/usr/bin/env python3
"""
check_layers.py - checks which way the includes of the library and the command go.

The library lives in one folder per layer under src/ (docs/architecture.md,
"Layers"). Each folder is on the include path and internal headers are included
by name ("fsutil.h"), so every header name must be unique under src/. A file
may include headers of its own layer, of the layers listed for it in ALLOWED,
the public header litesafe.h and system headers (<...>); anything else fails,
except the pairs recorded in EXCEPTIONS. An exception that is no longer needed
fails too, so the list only shrinks.

cli/ is built against the public header; the internal headers it includes
today are recorded in EXCEPTIONS and nothing else is allowed. examples/ (the
programs an embedder starts from) include the public headers only.

tests/support/ holds the test doubles (in-memory store, fault injector), built
as litesafe_testsupport for the unit tests only: its files may include the
layers listed for "support" in ALLOWED, and no file of src/ or cli/ may include
its headers (they are no headers of src/<layer>/).

Usage: check_layers.py [REPO_ROOT]   (default: two levels above this file)
Exit status 0 when every include goes the allowed way, 1 otherwise.
"""
import os
import re
import sys

# Which layers each layer may include (besides itself). Lower layers first.
ALLOWED = {
    "util": set(),
    "sqlite": {"util"},
    "storage": {"util"},
    "oneshot": {"util", "sqlite", "storage"},
    "replication": {"util", "sqlite", "storage"},
    "cli": set(),
    "examples": set(),
    "support": {"util", "storage"},  # tests/support/, not a folder of src/
}
# Folders checked besides src/<layer>/: the command, the examples and the test doubles.
OUTSIDE = {"cli": "cli", "examples": "examples", "support": "tests/support"}

# Includes that break the rule today, as (file, header). Do not add to this list.
EXCEPTIONS = set()  # none left: keep it that way

PUBLIC = {"litesafe.h"}
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def sources(folder):
    """Names of the .c and .h files directly in folder, sorted."""
    return sorted(f for f in os.listdir(folder) if f.endswith((".c", ".h")))


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), "..", ".."))
    src = os.path.join(root, "src")
    errors = []

    # 1. Every library file is in a layer folder; map each header name to its layer.
    files = []  # (relative path, layer)
    header_layer = {}
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if not os.path.isdir(path):
            if name.endswith((".c", ".h")):
                errors.append(f"src/{name}: not in a layer folder (src/<layer>/)")
            continue
        if name not in ALLOWED or name in OUTSIDE:
            layers = ", ".join(x for x in ALLOWED if x not in OUTSIDE)
            errors.append(f"src/{name}/: not a known layer ({layers})")
            continue
        for f in sources(path):
            files.append((f"src/{name}/{f}", name))
            if f.endswith(".h"):
                if f in header_layer:
                    errors.append(f"src/{name}/{f}: header name also in src/{header_layer[f]}/"
                                  " (headers are included by name: names must be unique)")
                header_layer[f] = name
    own_headers = {}  # layer outside src/ -> its own header names
    for layer, folder in OUTSIDE.items():
        names = sources(os.path.join(root, folder))
        own_headers[layer] = set(f for f in names if f.endswith(".h"))
        files += [(f"{folder}/{f}", layer) for f in names]

    # 2. Each quoted include goes to the file's own layer, an allowed one, or is recorded.
    used = set()
    for rel, layer in files:
        with open(os.path.join(root, rel), encoding="utf-8") as fh:
            text = fh.read()
        for inc in INCLUDE_RE.findall(text):
            if inc in PUBLIC or inc in own_headers.get(layer, ()):
                continue
            target = header_layer.get(inc)
            if target is None:
                errors.append(f'{rel}: includes "{inc}", which is no header of src/<layer>/')
                continue
            if target == layer or target in ALLOWED[layer]:
                continue
            if (rel, inc) in EXCEPTIONS:
                used.add((rel, inc))
                continue
            may = ", ".join(f"{x}/" for x in sorted({layer} | ALLOWED[layer]) if x not in OUTSIDE)
            own = f" and {OUTSIDE[layer]}/" if layer in OUTSIDE else ""
            errors.append(f'{rel}: includes "{inc}" (src/{target}/): '
                          f"{OUTSIDE.get(layer, layer)}/ may include only "
                          f"{may or 'include/litesafe.h'}{own}")

    # 3. A recorded exception that no longer occurs is removed from the list.
    for rel, inc in sorted(EXCEPTIONS - used):
        errors.append(f'{rel}: no longer includes "{inc}": remove it from EXCEPTIONS'
                      " in tests/unit/check_layers.py")

    for e in errors:
        print(f"check_layers: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"check_layers: {len(files)} files, includes go the allowed way "
          f"({len(EXCEPTIONS)} recorded exceptions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
