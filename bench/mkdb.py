#!/usr/bin/python3
"""bench/mkdb.py - build a benchmark database once.

Makes PATH: a WAL-mode SQLite database of about MB MiB (table t(id, v) with
1000-byte random, incompressible blobs), fully checkpointed so that the
database file alone is the whole database (a plain `cp` of it is then a fair
reference). Written to PATH.tmp and renamed, so an interrupted build is never
mistaken for a finished one.

Usage: mkdb.py PATH MB
"""
import os
import sqlite3
import sys


def main():
    path, mb = sys.argv[1], int(sys.argv[2])
    tmp = path + ".tmp"
    for p in (tmp, tmp + "-wal", tmp + "-shm"):
        if os.path.exists(p):
            os.unlink(p)
    db = sqlite3.connect(tmp, isolation_level=None)
    db.execute("PRAGMA page_size=4096")
    db.execute("PRAGMA journal_mode=wal")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA wal_autocheckpoint=10000")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    target = mb << 20
    while True:
        db.execute("BEGIN")
        db.executemany("INSERT INTO t(v) VALUES(randomblob(1000))", ((),) * 5000)
        db.execute("COMMIT")
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        if pages * 4096 >= target:
            break
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    os.rename(tmp, path)
    print("%s: %d MiB" % (path, os.path.getsize(path) >> 20))


if __name__ == "__main__":
    main()
