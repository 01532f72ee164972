#!/usr/bin/python3
"""bench/pybackup.py - reference: Python's sqlite3 backup API (one step, all
pages) into DST, then SHA-256 of DST, which is what litesafe does in one pass.

Usage: pybackup.py SRC DST   (prints the hex digest)
"""
import hashlib
import sqlite3
import sys


def main():
    src, dst = sys.argv[1], sys.argv[2]
    s = sqlite3.connect(src)
    d = sqlite3.connect(dst)
    s.backup(d, pages=-1)
    d.close()
    s.close()
    h = hashlib.sha256()
    with open(dst, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    print(h.hexdigest())


if __name__ == "__main__":
    main()
