"""`litesafe checkpoint DB`: the four modes, busy results that never hang,
databases not in WAL mode, and bad input.

Whether a checkpoint really copied the WAL back is checked by opening a copy of
the database file alone (without its -wal): it holds the rows only if they
were checkpointed.
"""
import contextlib
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import make_db, leave_wal, count, sha256, integrity

PAGE = 4096


def wal_frames_by_size(db):
    """Frames the -wal file holds by its size (no restart, no garbage)."""
    size = os.path.getsize(str(db) + "-wal")
    return (size - 32) // (24 + PAGE) if size >= 32 else 0


def rows_in_file_alone(db, tmp):
    """Rows of t in a copy of the database file without its WAL."""
    d = tmp / ("alone-%d" % time.monotonic_ns())
    d.mkdir()
    shutil.copyfile(db, d / "x.db")
    return count(d / "x.db")


def files_state(db):
    """(size, sha256) of the database and its -wal, for 'untouched' checks."""
    out = {}
    for suffix in ("", "-wal", "-shm"):
        p = str(db) + suffix
        out[suffix] = (os.path.getsize(p), sha256(p)) if os.path.exists(p) else None
    return out


@contextlib.contextmanager
def holding(db, *stmts):
    """A child process that runs `stmts` on `db` and keeps its connection (and
    any transaction) open until the block ends; it then exits without closing,
    so it neither commits nor checkpoints. Yields the first column of the last
    statement's first row (or None)."""
    code = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "row = None\n"
        "for s in sys.argv[2:]:\n"
        "    row = db.execute(s).fetchone()\n"
        "print('ready', row[0] if row else '', flush=True)\n"
        "sys.stdin.read()\n"
        "os._exit(0)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(db)] + list(stmts),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().split()
        assert line and line[0] == "ready", "holder did not start"
        yield line[1] if len(line) > 1 else None
    finally:
        p.stdin.close()
        p.wait(timeout=30)


def pinned_reader(db):
    """A reader holding a read transaction (an old snapshot once others write)."""
    return holding(db, "BEGIN", "SELECT count(*) FROM t")


@pytest.fixture
def waldb(tmp_path):
    """A WAL database: 100 rows checkpointed, 40 more only in the -wal."""
    db = tmp_path / "app.db"
    make_db(db, rows=100, checkpoint=True).close()
    leave_wal(db, rows=40)
    assert wal_frames_by_size(db) >= 40
    assert rows_in_file_alone(db, tmp_path) == 100
    return db


def test_passive_copies_every_frame_back(ls, waldb, tmp_path):
    frames = wal_frames_by_size(waldb)
    wal_size = os.path.getsize(str(waldb) + "-wal")
    r = ls("checkpoint", waldb, "--json")
    assert r.rc == 0, r
    j = r.json
    assert j["command"] == "checkpoint"
    assert j["database"] == str(waldb)
    assert j["mode"] == "PASSIVE"
    assert j["busy"] is False
    assert j["wal_mode"] is True
    assert j["wal_pages"] == frames
    assert j["checkpointed_pages"] == frames
    assert j["fully_checkpointed"] is True
    assert isinstance(j["elapsed_ms"], int) and j["elapsed_ms"] >= 0
    # The rows are in the database file now; passive leaves the WAL file as is.
    assert rows_in_file_alone(waldb, tmp_path) == 140
    assert os.path.getsize(str(waldb) + "-wal") == wal_size
    assert count(waldb) == 140
    assert integrity(waldb) == "ok"


def test_truncate_empties_the_wal(ls, waldb, tmp_path):
    r = ls("cp", waldb, "-m", "truncate", "--json")  # the alias
    assert r.rc == 0, r
    j = r.json
    assert j["mode"] == "TRUNCATE"
    assert (j["busy"], j["wal_pages"], j["checkpointed_pages"]) == (False, 0, 0)
    assert j["fully_checkpointed"] is True
    assert os.path.getsize(str(waldb) + "-wal") == 0
    assert rows_in_file_alone(waldb, tmp_path) == 140


@pytest.mark.parametrize("given,name", [("FULL", "FULL"), ("Restart", "RESTART"),
                                        ("tRuNcAtE", "TRUNCATE"), ("passive", "PASSIVE")])
def test_mode_in_any_case(ls, waldb, tmp_path, given, name):
    r = ls("checkpoint", "--mode=" + given, waldb, "--json")
    assert r.rc == 0, r
    assert r.json["mode"] == name
    assert r.json["fully_checkpointed"] is True
    assert rows_in_file_alone(waldb, tmp_path) == 140


def test_text_output(ls, waldb):
    r = ls("checkpoint", waldb, "-m", "full")
    assert r.rc == 0, r
    lines = r.out.splitlines()
    frames = wal_frames_by_size(waldb)
    # sqlite-checkpoint's layout: headline, then "  label:" padded to 20 columns.
    assert lines[0] == "checkpoint FULL [ok]"
    assert "  busy:               no" in lines
    assert "  fully checkpointed: yes" in lines
    assert "  database:           %s" % waldb in lines
    assert "  wal pages:          %d" % frames in lines
    assert "  checkpointed:       %d" % frames in lines


@pytest.mark.parametrize("mode", ["full", "restart", "truncate"])
def test_pinned_reader_is_busy_not_a_hang(ls, waldb, mode):
    with pinned_reader(waldb) as seen:
        assert seen == "140"
        leave_wal(waldb, rows=20)  # the reader's snapshot is now old
        frames = wal_frames_by_size(waldb)
        t0 = time.monotonic()
        r = ls("checkpoint", waldb, "-m", mode, "--busy-timeout", "300", "--json", timeout=60)
        took = time.monotonic() - t0
        assert r.rc == 0, r
        j = r.json
        assert (j["mode"], j["busy"], j["fully_checkpointed"]) == (mode.upper(), True, False)
        assert j["wal_pages"] == frames
        # Frames up to the reader's snapshot were copied, none past it.
        assert 0 < j["checkpointed_pages"] < frames
        # The busy handler waited about the timeout, not longer.
        assert took < 10
        assert 250 <= j["elapsed_ms"] < 5000
        assert "checkpoint busy" in r.err
        # The WAL is still there, with the frames the reader needs.
        assert os.path.getsize(str(waldb) + "-wal") > 0
    # (The database file alone is not a consistent state after a partial
    # checkpoint: pages also changed after the reader's snapshot stay behind.)
    assert count(waldb) == 160
    assert integrity(waldb) == "ok"


def test_pinned_reader_passive_is_partial_and_immediate(ls, waldb):
    with pinned_reader(waldb):
        leave_wal(waldb, rows=20)
        frames = wal_frames_by_size(waldb)
        r = ls("checkpoint", waldb, "--busy-timeout", "3000", "--json", timeout=60)
        assert r.rc == 0, r
        j = r.json
        # Passive never waits: SQLite does not call it busy, but it is partial.
        assert j["busy"] is False
        assert j["fully_checkpointed"] is False
        assert j["wal_pages"] == frames
        assert 0 < j["checkpointed_pages"] < frames
        assert j["elapsed_ms"] < 2000


def test_reader_on_latest_snapshot_blocks_only_restart(ls, waldb, tmp_path):
    """A reader on the newest snapshot lets full finish, but restart must wait
    for it to leave the WAL: busy after the timeout."""
    with pinned_reader(waldb):
        r = ls("checkpoint", waldb, "-m", "full", "--busy-timeout", "200", "--json")
        assert r.rc == 0, r
        assert (r.json["busy"], r.json["fully_checkpointed"]) == (False, True)
        r = ls("checkpoint", waldb, "-m", "restart", "--busy-timeout", "200", "--json")
        assert r.rc == 0, r
        assert r.json["busy"] is True
        assert r.json["elapsed_ms"] >= 150
    assert rows_in_file_alone(waldb, tmp_path) == 140


def test_writer_holding_the_lock_makes_full_busy(ls, waldb, tmp_path):
    with holding(waldb, "BEGIN IMMEDIATE", "INSERT INTO t(v) VALUES(randomblob(10))",
                 "SELECT count(*) FROM t"):
        t0 = time.monotonic()
        r = ls("checkpoint", waldb, "-m", "full", "--busy-timeout", "300", "--json",
               timeout=60)
        assert time.monotonic() - t0 < 10
        assert r.rc == 0, r
        assert r.json["busy"] is True
        assert r.json["elapsed_ms"] >= 250
        # It fell back to passive: the committed frames were still copied.
        assert r.json["checkpointed_pages"] == r.json["wal_pages"]
    assert rows_in_file_alone(waldb, tmp_path) == 140


def test_exclusive_lock_holder_makes_it_busy(ls, waldb):
    """A process in exclusive locking mode keeps everyone out of the file:
    busy after the timeout, exit 0, no hang."""
    with holding(waldb, "PRAGMA locking_mode=EXCLUSIVE", "BEGIN EXCLUSIVE",
                 "SELECT count(*) FROM t"):
        t0 = time.monotonic()
        r = ls("checkpoint", waldb, "-m", "truncate", "--busy-timeout", "300", "--json",
               timeout=60)
        assert time.monotonic() - t0 < 10
        assert r.rc == 0, r
        j = r.json
        assert (j["busy"], j["wal_mode"], j["fully_checkpointed"]) == (True, True, False)
        assert (j["wal_pages"], j["checkpointed_pages"]) == (-1, -1)
        assert j["elapsed_ms"] >= 250
        assert "could not start within the busy timeout" in r.err


def test_rollback_writer_holding_the_file(ls, tmp_path):
    db = tmp_path / "rj.db"
    make_db(db, rows=10, wal=False).close()
    with holding(db, "BEGIN EXCLUSIVE", "SELECT count(*) FROM t"):
        r = ls("checkpoint", db, "--busy-timeout", "200", "--json", timeout=60)
        assert r.rc == 0, r
        assert (r.json["busy"], r.json["wal_mode"], r.json["wal_pages"]) == (True, False, -1)
        assert r.json["elapsed_ms"] >= 150


def test_rollback_journal_database(ls, tmp_path):
    """Nothing to checkpoint: 0 of 0 pages, fully checkpointed (as
    sqlite-checkpoint reports it), and the database is left as it was."""
    db = tmp_path / "rj.db"
    make_db(db, rows=10, wal=False).close()
    before = files_state(db)
    r = ls("checkpoint", db, "-m", "truncate", "--json")
    assert r.rc == 0, r
    j = r.json
    assert j["wal_mode"] is False
    assert (j["wal_pages"], j["checkpointed_pages"]) == (0, 0)
    assert j["busy"] is False
    assert j["fully_checkpointed"] is True
    assert j["mode"] == "TRUNCATE"
    assert "not in WAL mode; nothing to checkpoint" in r.err
    assert files_state(db) == before
    assert not os.path.exists(str(db) + "-wal")
    # --quiet silences the note.
    r = ls("checkpoint", db, "-q")
    assert r.rc == 0 and r.err == "", r


def test_bad_mode_is_a_usage_error(ls, waldb):
    before = files_state(waldb)
    r = ls("checkpoint", waldb, "-m", "sideways")
    assert r.rc == 2, r
    assert "unknown mode 'sideways'" in r.err
    assert r.err.startswith("litesafe: checkpoint: ")
    assert files_state(waldb) == before


def test_bad_busy_timeout(ls, waldb):
    r = ls("checkpoint", waldb, "--busy-timeout", "soon")
    assert r.rc == 2 and "not a number" in r.err, r
    r = ls("checkpoint", waldb, "--busy-timeout", "-5")
    assert r.rc == 2 and "out of range" in r.err, r


def test_missing_database_is_not_created(ls, tmp_path):
    db = tmp_path / "missing.db"
    r = ls("checkpoint", db)
    assert r.rc == 1, r
    assert r.err.startswith("litesafe: checkpoint: ")
    assert "missing.db: No such file or directory" in r.err
    assert sorted(os.listdir(tmp_path)) == []


def test_missing_directory(ls, tmp_path):
    r = ls("checkpoint", tmp_path / "nodir" / "x.db")
    assert r.rc == 1, r
    assert "No such file or directory" in r.err
    assert not (tmp_path / "nodir").exists()


def test_empty_file_stays_empty(ls, tmp_path):
    """To SQLite a zero-length file is an empty database: nothing to
    checkpoint, and it is not opened (nothing written, nothing created)."""
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    r = ls("checkpoint", db, "--json")
    assert r.rc == 0, r
    j = r.json
    assert (j["wal_mode"], j["busy"], j["fully_checkpointed"]) == (False, False, True)
    assert (j["wal_pages"], j["checkpointed_pages"]) == (0, 0)
    assert os.path.getsize(db) == 0
    assert sorted(os.listdir(tmp_path)) == ["empty.db"]
    # With a -wal beside it, it is not an empty database: refused.
    (tmp_path / "empty.db-wal").write_bytes(b"x" * 100)
    r = ls("checkpoint", db, "--json")
    assert r.rc == 1, r
    assert r.json["code"] == "ENOTDB"
    assert "empty" in r.json["error"]
    assert os.path.getsize(db) == 0
    assert sorted(os.listdir(tmp_path)) == ["empty.db", "empty.db-wal"]


def test_not_a_database(ls, tmp_path):
    db = tmp_path / "notes.db"
    db.write_bytes(b"just some text, long enough to have a header\n" * 10)
    before = sha256(db)
    r = ls("checkpoint", db)
    assert r.rc == 1, r
    assert "file is not a database" in r.err
    assert sha256(db) == before
    assert sorted(os.listdir(tmp_path)) == ["notes.db"]


def test_a_directory_is_not_a_database(ls, tmp_path):
    r = ls("checkpoint", tmp_path)
    assert r.rc == 1, r
    assert "not a regular file" in r.err


def test_usage_errors(ls, waldb):
    r = ls("checkpoint")
    assert r.rc == 2 and "missing argument" in r.err, r
    r = ls("checkpoint", waldb, "--frobnicate")
    assert r.rc == 2 and "unknown option '--frobnicate'" in r.err, r
    r = ls("checkpoint", waldb, "other.db")
    assert r.rc == 2 and "unexpected argument" in r.err, r
    r = ls("checkpoint", waldb, "-m")
    assert r.rc == 2 and "needs a value" in r.err, r


@pytest.mark.parametrize("where", ["before", "after"])
def test_json_errors(ls, tmp_path, where):
    db = tmp_path / "nope.db"
    args = ["--json", "checkpoint", db] if where == "before" else ["checkpoint", db, "--json"]
    r = ls(*args)
    assert r.rc == 1, r
    j = r.json
    assert j["command"] == "checkpoint"
    assert j["code"] == "ENOENT"
    assert "nope.db" in j["error"]
    assert j["exit_code"] == 1
    args = ["--json", "cp", "-m", "x", db] if where == "before" else ["cp", "-m", "x", db, "--json"]
    r = ls(*args)
    assert r.rc == 2, r
    assert (r.json["command"], r.json["code"]) == ("checkpoint", "EUSAGE")


def test_help(ls):
    r = ls("checkpoint", "--help")
    assert r.rc == 0
    assert "usage: litesafe checkpoint DB" in r.out
    assert "--busy-timeout" in r.out and "--mode" in r.out
