"""`litesafe restore BACKUP -o PATH` and `litesafe restore BACKUP --replace DB`.

Every refusal is checked to leave every file as it was (names, sizes and
SHA-256 of the whole directory), and every success to leave no temp file.
"""
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import BIN, make_db, leave_wal, leave_hot_journal, count, dump, integrity, sha256


def dir_state(d):
    out = {}
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        st = os.lstat(p)
        out[name] = (st.st_size, sha256(p) if stat.S_ISREG(st.st_mode) else None)
    return out


def no_temp_files(d):
    return not [n for n in os.listdir(d) if n.endswith(".litesafe-tmp")]


def rows_in_main_file_only(path):
    """Rows visible in the database file alone, ignoring any -wal next to it."""
    conn = sqlite3.connect("file:%s?immutable=1" % path, uri=True)
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def backup(tmp_path, ls):
    """A backup (made by `litesafe backup`) of a database with 300 rows."""
    src = tmp_path / "src" / "app.db"
    src.parent.mkdir()
    make_db(src, rows=300, blob=150).close()
    d = tmp_path / "bk"
    d.mkdir()
    os.chmod(d, 0o755)
    dest = d / "app-20240101T000000Z.db"
    r = ls("backup", src, dest, "--json")
    assert r.rc == 0, r
    return dest


@pytest.fixture
def live(tmp_path):
    """An application database whose last 7 rows live only in its -wal."""
    d = tmp_path / "data"
    d.mkdir()
    db = d / "app.db"
    make_db(db, rows=50, blob=80).close()
    leave_wal(db, rows=7, blob=80)
    assert os.path.getsize(str(db) + "-wal") > 0
    assert rows_in_main_file_only(db) == 50
    return db


def hold_open(db, wal):
    """A child process with a connection open on db, idle; returns the Popen."""
    code = ("import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1])\n"
            "db.execute('SELECT count(*) FROM t').fetchone()\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


# ---------------------------------------------------------------------------
# -o PATH


def test_restore_to_new_path(ls, tmp_path, backup):
    out = tmp_path / "restored" / "app.db"
    out.parent.mkdir()
    r = ls("restore", backup, "-o", out, "--json")
    assert r.rc == 0, r
    j = r.json
    assert set(j) >= {"command", "source", "destination", "pre_restore", "size_bytes", "sha256",
                      "page_count", "elapsed_ms"}
    assert j["command"] == "restore"
    assert j["source"] == str(backup)
    assert j["destination"] == str(out)
    assert j["pre_restore"] is None
    assert j["size_bytes"] == os.path.getsize(out) == os.path.getsize(backup)
    assert j["sha256"] == sha256(out) == sha256(backup)
    assert j["page_count"] == os.path.getsize(out) // 4096
    assert dump(out) == dump(backup)
    assert count(out) == 300
    # The backup's permission bits; nothing but the database in the directory.
    assert stat.S_IMODE(os.stat(out).st_mode) == stat.S_IMODE(os.stat(backup).st_mode)
    assert sorted(os.listdir(out.parent)) == ["app.db"]


def test_restore_long_option_and_text_output(ls, tmp_path, backup):
    out = tmp_path / "r.db"
    r = ls("restore", "--output", out, backup)
    assert r.rc == 0, r
    assert "destination: %s" % out in r.out
    assert "sha256: %s" % sha256(out) in r.out


def test_restore_to_existing_path_is_refused(ls, tmp_path, backup):
    out = tmp_path / "exists.db"
    out.write_bytes(b"precious")
    before = dir_state(tmp_path)
    r = ls("restore", backup, "-o", out, "--json")
    assert r.rc == 1, r
    assert r.json["code"] == "EEXIST"
    assert "exists" in r.json["error"]
    assert out.read_bytes() == b"precious"
    assert dir_state(tmp_path) == before


def test_restore_next_to_a_stale_wal_is_refused(ls, tmp_path, backup, live):
    """PATH is free but PATH-wal is not: SQLite would replay it into the copy."""
    out = tmp_path / "fresh.db"
    shutil.copyfile(str(live) + "-wal", str(out) + "-wal")
    before = dir_state(tmp_path)
    r = ls("restore", backup, "-o", out)
    assert r.rc == 1, r
    assert "%s-wal exists" % out in r.err and "remove it or choose another path" in r.err
    assert dir_state(tmp_path) == before


def test_restore_from_backup_with_committed_wal(ls, tmp_path, backup):
    """A backup someone opened and wrote to: its committed -wal frames are restored too."""
    leave_wal(backup, rows=25, blob=150)
    assert os.path.getsize(str(backup) + "-wal") > 0
    assert rows_in_main_file_only(backup) == 300
    out = tmp_path / "withwal.db"
    r = ls("restore", backup, "-o", out, "--json")
    assert r.rc == 0, r
    assert not os.path.exists(str(out) + "-wal")
    assert rows_in_main_file_only(out) == 325
    assert integrity(out) == "ok"
    assert r.json["sha256"] == sha256(out)


# ---------------------------------------------------------------------------
# --replace DB


def test_replace_happy_path(ls, backup, live):
    old_dump = dump_via_copy(live)
    assert len([l for l in old_dump if l.startswith('INSERT INTO "t"')]) == 57
    os.chmod(live, 0o640)
    d = live.parent
    r = ls("restore", backup, "--replace", live, "--json")
    assert r.rc == 0, r
    j = r.json
    pre = str(live) + ".pre-restore"
    assert j["destination"] == str(live)
    assert j["pre_restore"] == pre
    assert j["replaced"] is True
    assert j["sha256"] == sha256(live) == sha256(backup)
    assert "kept as %s" % pre in r.err
    # The stale -wal and -shm of the old database are gone; the old -wal moved.
    assert sorted(os.listdir(d)) == ["app.db", "app.db.pre-restore", "app.db.pre-restore-wal"]
    assert stat.S_IMODE(os.stat(live).st_mode) == 0o640
    assert dump(live) == dump(backup)
    assert count(live) == 300
    # The pre-restore copy opens as the old database, WAL-only rows included.
    assert dump(pre) == old_dump
    assert count(pre) == 57
    assert integrity(pre) == "ok"


def dump_via_copy(db):
    """dump() of a database and its -wal, read from a copy (the original stays untouched)."""
    tmp = tempfile.mkdtemp()
    try:
        shutil.copyfile(db, os.path.join(tmp, "c.db"))
        if os.path.exists(str(db) + "-wal"):
            shutil.copyfile(str(db) + "-wal", os.path.join(tmp, "c.db-wal"))
        return dump(os.path.join(tmp, "c.db"))
    finally:
        shutil.rmtree(tmp)


def test_replace_moves_a_hot_journal_aside(ls, tmp_path, backup):
    """A rollback-mode database whose writer died mid-transaction: the hot
    journal belongs to it and goes to DB.pre-restore-journal."""
    d = tmp_path / "rb"
    d.mkdir()
    db = d / "app.db"
    make_db(db, rows=40, wal=False, blob=3000).close()
    leave_hot_journal(db)
    r = ls("restore", backup, "--replace", db, "--json")
    assert r.rc == 0, r
    assert sorted(os.listdir(d)) == ["app.db", "app.db.pre-restore",
                                     "app.db.pre-restore-journal"]
    assert count(db) == 300
    pre = str(db) + ".pre-restore"
    assert count(pre) == 40          # the journal rolled back the dead transaction
    assert integrity(pre) == "ok"


def test_replace_missing_db_just_publishes(ls, tmp_path, backup):
    db = tmp_path / "new.db"
    r = ls("restore", backup, "--replace", db, "--json")
    assert r.rc == 0, r
    assert r.json["pre_restore"] is None
    assert count(db) == 300
    assert not os.path.exists(str(db) + ".pre-restore")


@pytest.mark.parametrize("wal", [True, False])
def test_replace_refused_while_db_is_open(ls, tmp_path, backup, wal):
    d = tmp_path / "busy"
    d.mkdir()
    db = d / "app.db"
    make_db(db, rows=20, wal=wal).close()
    p = hold_open(db, wal)
    try:
        before = dir_state(d)
        r = ls("restore", backup, "--replace", db, "--json")
        assert r.rc == 1, r
        assert r.json["code"] == "EBUSY"
        assert "process %d" % p.pid in r.json["error"]
        assert dir_state(d) == before
        assert no_temp_files(d)
    finally:
        p.kill()
        p.wait()
    assert count(db) == 20


def other_user_workdir():
    """A new directory another user can reach wherever the checkout lives (it
    may sit under a 0700 home such as /root), holding bin/litesafe, a copy of
    the binary that user can run, and data/, world-writable. Below the first of
    $TMPDIR, /tmp, /var/tmp whose every ancestor lets others in. The caller
    removes it."""
    def reachable(path):
        p = os.path.abspath(path)
        while True:
            if not os.stat(p).st_mode & stat.S_IXOTH:
                return False
            if p == os.path.dirname(p):
                return True
            p = os.path.dirname(p)

    bases = [b for b in (tempfile.gettempdir(), "/tmp", "/var/tmp")
             if os.path.isdir(b) and reachable(b)]
    assert bases, "no temporary directory that other users can reach"
    d = tempfile.mkdtemp(prefix="ls-restore-", dir=bases[0])
    os.chmod(d, 0o755)
    os.mkdir(os.path.join(d, "bin"), 0o755)
    binary = os.path.join(d, "bin", "litesafe")
    shutil.copyfile(BIN, binary)
    os.chmod(binary, 0o755)
    os.mkdir(os.path.join(d, "data"))
    os.chmod(os.path.join(d, "data"), 0o777)
    return d, binary


def test_replace_refused_by_lock_of_another_user(ls, tmp_path, backup):
    """Another user's WAL connection: /proc/<pid>/fd is unreadable to us, its
    locks give it away. That user (nobody: uid and gid 65534, no supplementary
    groups) runs its own copy of the binary on a database in a directory it can
    reach, so the test passes wherever the checkout is."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run litesafe as another user")
    nobody = 65534
    top, binary = other_user_workdir()
    try:
        d = os.path.join(top, "data")
        db = os.path.join(d, "app.db")
        make_db(db, rows=20).close()
        bk = os.path.join(d, "bk.db")
        shutil.copyfile(backup, bk)
        for f in (db, bk):
            os.chmod(f, 0o644)
        p = hold_open(db, True)
        try:
            before = dir_state(d)
            r = subprocess.run([binary, "restore", bk, "--replace", db], capture_output=True,
                               text=True, user=nobody, group=nobody, extra_groups=[])
            assert r.returncode == 1, r
            # Seen through SQLite's locks (a WAL connection keeps a shared lock
            # on the database and on the -shm), not through /proc.
            assert "locked" in r.stderr and "open in process" not in r.stderr
            assert dir_state(d) == before
        finally:
            p.kill()
            p.wait()
    finally:
        shutil.rmtree(top)


def test_replace_refused_when_pre_restore_exists(ls, backup, live):
    pre = str(live) + ".pre-restore"
    with open(pre, "wb") as f:
        f.write(b"earlier")
    before = dir_state(live.parent)
    r = ls("restore", backup, "--replace", live, "--json")
    assert r.rc == 1, r
    assert r.json["code"] == "EEXIST"
    assert "move it away" in r.json["error"]
    assert pre in r.json["error"]
    assert dir_state(live.parent) == before


def test_corrupt_backup_changes_nothing(ls, tmp_path, backup, live):
    # A table leaf page with an invalid page type.
    with open(backup, "r+b") as f:
        data = f.read()
        leaf = next(pg for pg in range(3, len(data) // 4096 + 1)
                    if data[(pg - 1) * 4096] == 0x0D)
        f.seek((leaf - 1) * 4096)
        f.write(b"\xff")
    before_live = dir_state(live.parent)
    r = ls("restore", backup, "--replace", live, "--json")
    assert r.rc == 1, r
    assert r.json["code"] == "ECORRUPT"
    assert "integrity" in r.json["error"] and "nothing was restored" in r.json["error"]
    assert dir_state(live.parent) == before_live

    out = tmp_path / "out"
    out.mkdir()
    r = ls("restore", backup, "-o", out / "x.db")
    assert r.rc == 1, r
    assert os.listdir(out) == []


def test_missing_backup(ls, tmp_path, live):
    before = dir_state(live.parent)
    r = ls("restore", tmp_path / "nope.db", "--replace", live, "--json")
    assert r.rc == 1, r
    assert r.json["code"] == "ENOENT"
    assert "nope.db" in r.json["error"]
    assert dir_state(live.parent) == before
    r = ls("restore", tmp_path / "nope.db", "-o", tmp_path / "x.db")
    assert r.rc == 1, r
    assert "nope.db" in r.err
    assert not (tmp_path / "x.db").exists()


def test_not_a_database_backup(ls, tmp_path):
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"hello" * 100)
    r = ls("restore", bogus, "--replace", tmp_path / "x.db")
    assert r.rc == 1, r
    assert "not an SQLite database" in r.err
    assert not (tmp_path / "x.db").exists()


# ---------------------------------------------------------------------------
# Command line


@pytest.mark.parametrize("args,what", [
    (("BK",), "-o PATH or --replace DB"),
    (("BK", "-o", "OUT", "--replace", "OUT"), "not both"),
    (("BK", "OUT"), "unexpected argument"),
    ((), "missing argument"),
])
def test_usage_errors(ls, tmp_path, backup, args, what):
    args = [str(backup) if a == "BK" else str(tmp_path / "o.db") if a == "OUT" else a
            for a in args]
    r = ls("--json", "restore", *args)
    assert r.rc == 2, r
    assert r.json["code"] == "EUSAGE"
    assert what in r.json["error"]
    assert not (tmp_path / "o.db").exists()


def test_replica_options_mean_a_replica_restore(ls, tmp_path, backup):
    """A URL or a replica-only option selects a replica restore, even when the
    argument is an existing database file: `restore -replica NAME DB` is
    Litestream's way to restore a configured database. Nothing is written."""
    r = ls("restore", "-o", tmp_path / "x.db", "file://%s" % (tmp_path / "empty-replica"),
           "--json")
    assert r.rc == 1, r
    assert "no matching backup" in r.json["error"]
    cfg = tmp_path / "none.yml"
    r = ls("restore", "-o", tmp_path / "x.db", "-config", cfg, "-replica", "s3", backup)
    assert r.rc != 0, r
    assert str(cfg) in r.err
    assert not (tmp_path / "x.db").exists()
