#!/usr/bin/python3
"""What a power cut leaves of some directory trees: the companion of the
LD_PRELOAD shim powercut.c (which documents the model and the state
directory). Used by tests/integration/test_powercut.py.

    powercut.py arm STATE ROOT...   the trees as they are now are durable:
                                    STATE is made afresh (base/, dirs/)
    powercut.py cut STATE ROOT...   after the process that ran under the shim
                                    was killed: rebuild each ROOT as a power
                                    cut now would leave it, print what was
                                    lost as one JSON line, and arm again

Each ROOT must exist (the test makes it) and is not renamed or removed while
armed: its own entry in its parent is outside the model. A ROOT is rebuilt
beside itself (ROOT.powercut-new) and swapped in with two renames.
"""
import json
import os
import shutil
import sys


def listing(state, ino):
    """The durable entries of directory inode `ino`: {name: (kind, ino)};
    none recorded means never synced since it was made: empty."""
    p = os.path.join(state, "dirs", str(ino))
    out = {}
    if not os.path.exists(p):
        return out
    with open(p) as f:
        for line in f:
            kind, num, name = line.rstrip("\n").split(" ", 2)
            out[name] = (kind, int(num))
    return out


def content_of(state, ino):
    """The file holding the durable content of file inode `ino`, or None
    (never synced since it was made: empty)."""
    for kind in ("data", "base"):
        p = os.path.join(state, kind, str(ino))
        if os.path.exists(p):
            return p
    return None


def build(state, ino, dest, now, stats, seen):
    """Write the durable tree of directory `ino` into `dest` (new); `now` is
    the live path of the same directory (or None), to count the losses."""
    os.mkdir(dest)
    if ino in seen:  # a cycle cannot be durable twice
        return
    seen.add(ino)
    entries = listing(state, ino)
    live = set(os.listdir(now)) if now and os.path.isdir(now) else set()
    for name in live - set(entries):
        stats["names_lost"] += 1
    for name, (kind, num) in sorted(entries.items()):
        here = os.path.join(now, name) if now else None
        if here and not os.path.lexists(here):
            stats["names_back"] += 1
            here = None
        if kind == "d":
            build(state, num, os.path.join(dest, name), here, stats, seen)
            continue
        src = content_of(state, num)
        out = os.path.join(dest, name)
        if src is None:
            open(out, "wb").close()
            stats["files_emptied"] += 1
            continue
        shutil.copyfile(src, out)
        st = os.stat(src)
        os.chmod(out, st.st_mode & 0o7777)
        os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        if here and os.path.isfile(here):
            if os.path.getsize(here) != st.st_size:
                stats["files_resized"] += 1
            elif not same_bytes(here, out):
                stats["files_changed"] += 1


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def arm(state, roots):
    shutil.rmtree(state, ignore_errors=True)
    for kind in ("base", "data", "dirs", "keep"):
        os.makedirs(os.path.join(state, kind))
    for root in roots:
        for d, subdirs, files in os.walk(root):
            lines = []
            for name in sorted(subdirs + files):
                p = os.path.join(d, name)
                st = os.lstat(p)
                if os.path.isdir(p) and not os.path.islink(p):
                    lines.append("d %d %s\n" % (st.st_ino, name))
                elif os.path.isfile(p) and not os.path.islink(p):
                    lines.append("f %d %s\n" % (st.st_ino, name))
                    os.link(p, os.path.join(state, "base", str(st.st_ino)))
            with open(os.path.join(state, "dirs", str(os.stat(d).st_ino)), "w") as f:
                f.write("".join(lines))


def cut(state, roots):
    stats = {"names_lost": 0, "names_back": 0, "files_emptied": 0, "files_resized": 0,
             "files_changed": 0}
    for root in roots:
        root = root.rstrip("/")
        new, old = root + ".powercut-new", root + ".powercut-old"
        for p in (new, old):
            shutil.rmtree(p, ignore_errors=True)
        build(state, os.stat(root).st_ino, new, root, stats, set())
        os.rename(root, old)
        os.rename(new, root)
        shutil.rmtree(old)
    arm(state, roots)
    return stats


def main(argv):
    if len(argv) < 4 or argv[1] not in ("arm", "cut"):
        sys.exit(__doc__)
    state, roots = argv[2], argv[3:]
    if argv[1] == "arm":
        arm(state, roots)
    else:
        print(json.dumps(cut(state, roots)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
