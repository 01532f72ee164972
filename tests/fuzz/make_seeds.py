#!/usr/bin/python3
"""tests/fuzz/make_seeds.py - (re)make the generated seed files of the fuzz corpora.

Seeds that litesafe, SQLite or Litestream write (WAL files, databases, segments)
are made here from real runs, so they are what those programs really write;
server responses and hand-written inputs live in the corpus directories as
they are. Usage: tests/fuzz/make_seeds.py [TARGET...] (default: all it knows).
"""
import os
import shutil
import sqlite3
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def sqlite_wal(page_size, txns, rows):
    """A WAL as SQLite wrote it: `txns` transactions of `rows` rows, not checkpointed."""
    d = tempfile.mkdtemp()
    try:
        db = sqlite3.connect(os.path.join(d, "x.db"), isolation_level=None)
        db.execute("PRAGMA page_size=%d" % page_size)
        db.execute("PRAGMA journal_mode=wal")
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        for i in range(txns):
            db.execute("BEGIN")
            for j in range(rows):
                db.execute("INSERT INTO t(v) VALUES (randomblob(?))", (16 + (i * 7 + j) % 40,))
            db.execute("COMMIT")
        with open(os.path.join(d, "x.db-wal"), "rb") as f:
            data = f.read()
        db.close()
        return data
    finally:
        shutil.rmtree(d)


def fuzz_wal(out):
    seeds = {
        "sqlite-512-3txn.wal": sqlite_wal(512, 3, 4),
        "sqlite-1024-1txn.wal": sqlite_wal(1024, 1, 2),
        "sqlite-512-uncommitted-tail.wal": sqlite_wal(512, 2, 3)[:-300],
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


MAKERS = {"fuzz_wal": fuzz_wal}

if __name__ == "__main__":
    for target in sys.argv[1:] or sorted(MAKERS):
        out = os.path.join(HERE, "corpus", target)
        os.makedirs(out, exist_ok=True)
        MAKERS[target](out)
        print(target, len(os.listdir(out)), "seeds")
