"""Shared helpers for the integration tests: they drive the real `litesafe`
binary (path in $LITESAFE_BIN, set by ctest) on real SQLite databases.

Run one file by hand:
    LITESAFE_BIN=build/litesafe /usr/bin/python3 -m pytest -q tests/integration/test_backup.py
"""
import json
import os
import sqlite3
import stat
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("LITESAFE_BIN") or os.path.join(ROOT, "build", "litesafe")


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    @property
    def json(self):
        """The last JSON object printed on stdout."""
        lines = [l for l in self.out.splitlines() if l.strip()]
        assert lines, "no output; stderr: %s" % self.err
        return json.loads(lines[-1])

    @property
    def jsons(self):
        return [json.loads(l) for l in self.out.splitlines() if l.strip()]

    def __repr__(self):
        return "Result(rc=%r, out=%r, err=%r)" % (self.rc, self.out, self.err)


def run(*args, timeout=120, env=None, input=None):
    """Run litesafe with the given arguments; returns a Result."""
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, env=e, input=input)
    return Result(p)


@pytest.fixture
def ls():
    """The runner: ls("backup", db, dest, "--json")."""
    return run


def make_db(path, rows=100, wal=True, blob=100, checkpoint=False, page_size=None):
    """Create a database with table t(id, v) holding `rows` rows.

    With wal=True the database is in WAL mode and, unless checkpoint=True,
    its last transactions stay in the -wal file (the connection closes without
    checkpointing).
    """
    db = sqlite3.connect(str(path), isolation_level=None)
    if page_size:
        db.execute("PRAGMA page_size=%d" % page_size)
    db.execute("PRAGMA journal_mode=%s" % ("wal" if wal else "delete"))
    if wal:
        db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
    db.execute("BEGIN")
    for _ in range(rows):
        db.execute("INSERT INTO t(v) VALUES(randomblob(?))", (blob,))
    db.execute("COMMIT")
    if checkpoint:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db  # caller closes (or keeps it open to hold the WAL)


def count(path, table="t"):
    db = sqlite3.connect(str(path))
    try:
        return db.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
    finally:
        db.close()


def integrity(path):
    db = sqlite3.connect(str(path))
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def dump(path):
    """A comparable image of a database's content."""
    db = sqlite3.connect(str(path))
    try:
        return list(db.iterdump())
    finally:
        db.close()


def sha256(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def leave_wal(path, rows=100, blob=100, checkpoint_first=False):
    """Append `rows` rows in a child process that exits without closing its
    connection, so the committed transactions stay in the -wal file (a clean
    close of the last connection would checkpoint and delete the WAL)."""
    code = (
        "import sqlite3, os, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA journal_mode=wal')\n"
        "db.execute('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)')\n"
        "if int(sys.argv[4]): db.execute('PRAGMA wal_checkpoint(TRUNCATE)')\n"
        "db.execute('PRAGMA wal_autocheckpoint=0')\n"
        "for i in range(int(sys.argv[2])):\n"
        "    db.execute('INSERT INTO t(v) VALUES(randomblob(?))', (int(sys.argv[3]),))\n"
        "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code, str(path), str(rows), str(blob),
                    "1" if checkpoint_first else "0"], check=True)


def leave_hot_journal(path):
    """In a child process, begin a transaction on the rollback-mode database
    at path that changes more pages than its cache holds (so they spill into
    the file), then die: path-journal is left hot."""
    code = ("import sqlite3, os, sys\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('PRAGMA cache_size=2')\n"
            "db.execute('BEGIN')\n"
            "db.execute('DELETE FROM t')\n"
            "db.execute('INSERT INTO t(v) VALUES(randomblob(30000))')\n"
            "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    assert os.path.getsize(str(path) + "-journal") > 0


sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    """The LS_TEST_* settings of the real test servers (S3, SFTP, Azure).

    Under ctest the "servers" fixture has started them and $LS_TEST_SERVERS
    names their servers.env; run by hand, they are started here for the
    session and stopped at its end."""
    import testservers
    path = os.environ.get("LS_TEST_SERVERS")
    if path:
        assert os.path.exists(path), "%s is missing: did servers.start fail?" % path
        yield testservers.read_env(path)
        return
    workdir = str(tmp_path_factory.mktemp("servers"))
    infos, env = testservers.start(workdir)
    try:
        yield env
    finally:
        testservers.stop_infos(infos)


def dir_state(d):
    """Names, kinds, sizes, mtimes and SHA-256 of everything in directory d:
    what a read-only command must leave as it found it."""
    out = {}
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        st = os.lstat(p)
        digest = sha256(p) if stat.S_ISREG(st.st_mode) else None
        out[name] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, digest)
    return out
