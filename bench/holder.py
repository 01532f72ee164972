#!/usr/bin/python3
"""bench/holder.py - a reader that only holds a read transaction.

Measures nothing itself: it is the control for the writer runs of run.sh.
It opens DB, starts a read transaction (BEGIN + one read) and keeps it for
SECONDS without reading anything else, which is what every consistent online
copy does for as long as it copies (litesafe, VACUUM INTO, the backup API in
one step). While it holds its snapshot SQLite cannot restart the WAL.

Usage: holder.py DB SECONDS
"""
import sqlite3
import sys
import time

db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN")
db.execute("SELECT count(*) FROM sqlite_master").fetchone()
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
db.close()
