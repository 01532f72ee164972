"""Drop-in output compatibility with sqlite-checkpoint 0.1.0.

Users come to litesafe with scripts that parse sqlite-checkpoint's output.
These tests pin its observable contract, adapted to litesafe's binary and its
exit codes (1 runtime failure, 2 usage; sqlite-checkpoint says 2 for a file
that is not a database, litesafe says 1):

  - the command-line cases of sqlite-checkpoint's own test suite
    (tests/test_cli.py, and what tests/test_core.py checks that a command
    line can see), ported;
  - its JSON keys and values: `mode` in upper case, `snapshot --json` with
    `checkpoint`/`backup` objects and `elapsed_ms` at the top level;
  - its text output: the headline lines (`checkpoint PASSIVE [ok]`,
    `snapshot complete [checkpoint ok]`, `backup complete`, `database info`)
    and the aligned field lines under them, litesafe's extra fields after;
  - a rollback-journal database checkpoints as "nothing to do" (0 of 0,
    fully checkpointed) and never gets a -wal;
  - a file that is not a database fails with SQLite's words "file is not a
    database" in every one-shot command, creating and changing nothing.
Litesafe's own extra keys are allowed everywhere; sqlite-checkpoint's are
required.
"""
import json
import os
import re
import sqlite3

import pytest

from conftest import make_db, leave_wal, count, sha256, integrity, dir_state
from test_checkpoint import pinned_reader, wal_frames_by_size

MODES = ["PASSIVE", "FULL", "RESTART", "TRUNCATE"]

# sqlite-checkpoint's field lines: two spaces, "label:" padded to 20 columns, value.
def field(label, value):
    return "  %-20s%s" % (label + ":", value)


ELAPSED = re.compile(r"^  elapsed:            \d+(\.\d+)? ms$")


def commas(n):
    return "{:,}".format(n)




def journal_versions(db):
    """Header bytes 18 and 19: (1, 1) rollback journal, (2, 2) WAL."""
    with open(db, "rb") as f:
        h = f.read(20)
    return h[18], h[19]


@pytest.fixture
def wal_db(tmp_path):
    """sqlite-checkpoint's fixture: a WAL database with two rows in `items`,
    closed normally (the last close checkpoints and removes the -wal)."""
    db_path = tmp_path / "test.db"
    conn = sqlite3.connect(str(db_path))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO items (name) VALUES ('alpha')")
    conn.execute("INSERT INTO items (name) VALUES ('bravo')")
    conn.commit()
    conn.close()
    return db_path


@pytest.fixture
def busy_wal(tmp_path):
    """A WAL database whose last 40 transactions are only in the -wal."""
    db = tmp_path / "app.db"
    make_db(db, rows=100, checkpoint=True).close()
    leave_wal(db, rows=40)
    assert wal_frames_by_size(db) >= 40
    return db


@pytest.fixture
def rollback_db(tmp_path):
    """A database in rollback-journal mode (journal_mode=delete)."""
    db = tmp_path / "rj.db"
    make_db(db, rows=30, wal=False).close()
    assert journal_versions(db) == (1, 1)
    return db


# ---------------------------------------------------------------------------
# sqlite-checkpoint's tests/test_cli.py, ported


def test_checkpoint_command(ls, wal_db):
    r = ls("checkpoint", wal_db)
    assert r.rc == 0, r
    assert "checkpoint PASSIVE" in r.out


def test_backup_command(ls, wal_db, tmp_path):
    dest = tmp_path / "cli_backup.db"
    r = ls("backup", wal_db, dest)
    assert r.rc == 0, r
    assert dest.exists()
    assert "sha256" in r.out


def test_snapshot_command(ls, wal_db, tmp_path):
    dest = tmp_path / "cli_snap.db"
    r = ls("snapshot", wal_db, dest)
    assert r.rc == 0, r
    assert "snapshot complete" in r.out


def test_info_command(ls, wal_db):
    r = ls("info", wal_db)
    assert r.rc == 0, r
    assert "wal" in r.out


def test_json_output(ls, wal_db):
    r = ls("--json", "info", wal_db)
    assert r.rc == 0, r
    data = json.loads(r.out)
    assert data["command"] == "info"
    assert data["journal_mode"] == "wal"


def test_missing_database_returns_error(ls, tmp_path):
    r = ls("info", tmp_path / "nope.db")
    assert r.rc == 1, r
    assert os.listdir(tmp_path) == []


def test_alias_cp(ls, wal_db):
    r = ls("cp", wal_db)
    assert r.rc == 0, r


# ---------------------------------------------------------------------------
# What sqlite-checkpoint's tests/test_core.py checks, seen from the command line


def test_passive_checkpoint(ls, wal_db):
    r = ls("--json", "checkpoint", wal_db)
    assert r.rc == 0, r
    j = r.json
    assert j["mode"] == "PASSIVE"
    assert j["busy"] is False
    assert j["elapsed_ms"] >= 0


def test_truncate_checkpoint(ls, busy_wal):
    r = ls("--json", "checkpoint", busy_wal, "-m", "truncate")
    assert r.rc == 0, r
    assert r.json["fully_checkpointed"] is True
    wal = str(busy_wal) + "-wal"
    assert not os.path.exists(wal) or os.path.getsize(wal) == 0


def test_checkpoint_missing_database(ls, tmp_path):
    r = ls("checkpoint", tmp_path / "nope.db")
    assert r.rc == 1, r
    assert os.listdir(tmp_path) == []


def test_basic_backup(ls, wal_db, tmp_path):
    dest = tmp_path / "backup.db"
    r = ls("--json", "backup", wal_db, dest)
    assert r.rc == 0, r
    assert dest.exists()
    assert r.json["size_bytes"] > 0
    assert len(r.json["sha256"]) == 64


def test_backup_is_valid_database(ls, wal_db, tmp_path):
    dest = tmp_path / "backup.db"
    assert ls("backup", wal_db, dest).rc == 0
    conn = sqlite3.connect(str(dest))
    rows = conn.execute("SELECT name FROM items ORDER BY id").fetchall()
    conn.close()
    assert rows == [("alpha",), ("bravo",)]


def test_backup_refuses_overwrite(ls, wal_db, tmp_path):
    dest = tmp_path / "backup.db"
    dest.write_bytes(b"existing")
    r = ls("backup", wal_db, dest)
    assert r.rc == 1, r
    assert dest.read_bytes() == b"existing"


def test_backup_leaves_no_temp_file(ls, wal_db, tmp_path):
    dest = tmp_path / "backup.db"
    assert ls("backup", wal_db, dest).rc == 0
    assert dest.exists()
    # Only the copy and the source's own files (SQLite gives a WAL database
    # its -wal/-shm when it is opened); no temp file of the copy is left.
    left = set(os.listdir(tmp_path)) - {"backup.db", "test.db", "test.db-wal", "test.db-shm"}
    assert left == set()


def test_backup_missing_source(ls, tmp_path):
    r = ls("backup", tmp_path / "nope.db", tmp_path / "out.db")
    assert r.rc == 1, r
    assert os.listdir(tmp_path) == []


def test_snapshot_creates_valid_backup(ls, wal_db, tmp_path):
    dest = tmp_path / "snap.db"
    r = ls("snapshot", wal_db, dest)
    assert r.rc == 0, r
    assert count(dest, "items") == 2


def test_info_returns_expected_keys(ls, wal_db):
    r = ls("--json", "info", wal_db)
    assert r.rc == 0, r
    j = r.json
    assert j["journal_mode"] == "wal"
    assert j["page_count"] >= 1
    assert j["size_bytes"] > 0


# ---------------------------------------------------------------------------
# JSON shapes


@pytest.mark.parametrize("mode", MODES)
def test_checkpoint_json_mode_is_upper_case(ls, busy_wal, mode):
    r = ls("--json", "checkpoint", busy_wal, "-m", mode.lower())
    assert r.rc == 0, r
    j = r.json
    assert j["command"] == "checkpoint"
    assert j["mode"] == mode
    assert j["busy"] is False
    assert j["fully_checkpointed"] is True
    assert isinstance(j["wal_pages"], int) and isinstance(j["checkpointed_pages"], int)
    assert j["database"] == str(busy_wal)
    assert isinstance(j["elapsed_ms"], (int, float))


@pytest.mark.parametrize("mode", MODES)
def test_snapshot_json_shape(ls, busy_wal, tmp_path, mode):
    dest = tmp_path / "snap.db"
    r = ls("--json", "snapshot", busy_wal, dest, "-m", mode.lower())
    assert r.rc == 0, r
    j = r.json
    assert j["command"] == "snapshot"
    c, b = j["checkpoint"], j["backup"]
    assert set(c) >= {"mode", "busy", "wal_pages", "checkpointed_pages", "fully_checkpointed"}
    assert c["mode"] == mode
    assert (c["busy"], c["fully_checkpointed"]) == (False, True)
    assert set(b) >= {"source", "destination", "size_bytes", "sha256"}
    assert b["destination"] == str(dest)
    assert b["size_bytes"] == os.path.getsize(dest)
    assert b["sha256"] == sha256(dest)
    # elapsed_ms at the top level (sqlite-checkpoint's total) and in the parts.
    assert isinstance(j["elapsed_ms"], (int, float))
    assert j["elapsed_ms"] >= 0
    assert j["elapsed_ms"] == c["elapsed_ms"] + b["elapsed_ms"]
    assert count(dest) == 140


def test_backup_and_info_json_keys(ls, busy_wal, tmp_path):
    r = ls("--json", "backup", busy_wal, tmp_path / "b.db")
    assert r.rc == 0, r
    assert set(r.json) >= {"command", "source", "destination", "size_bytes", "sha256",
                           "elapsed_ms"}
    assert r.json["command"] == "backup"
    r = ls("--json", "info", busy_wal)
    assert r.rc == 0, r
    j = r.json
    assert set(j) >= {"command", "path", "size_bytes", "journal_mode", "wal_file_exists",
                      "wal_size_bytes", "page_size", "page_count", "freelist_count"}
    assert (j["journal_mode"], j["wal_file_exists"]) == ("wal", True)
    assert j["wal_size_bytes"] == os.path.getsize(str(busy_wal) + "-wal")


# ---------------------------------------------------------------------------
# Text output


def test_checkpoint_text(ls, busy_wal):
    frames = wal_frames_by_size(busy_wal)
    r = ls("checkpoint", busy_wal)
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[0] == "checkpoint PASSIVE [ok]"
    assert lines[1] == field("busy", "no")
    assert lines[2] == field("wal pages", frames)
    assert lines[3] == field("checkpointed", frames)
    assert ELAPSED.match(lines[4]), lines[4]
    # litesafe's extra fields follow in the same layout.
    assert all(l.startswith("  ") and ": " in l for l in lines[5:]), lines
    assert field("database", busy_wal) in lines


@pytest.mark.parametrize("mode", MODES)
def test_checkpoint_text_headline_per_mode(ls, busy_wal, mode):
    r = ls("cp", busy_wal, "-m", mode.lower())
    assert r.rc == 0, r
    assert r.out.splitlines()[0] == "checkpoint %s [ok]" % mode


def test_checkpoint_partial_and_busy_text(ls, busy_wal):
    with pinned_reader(busy_wal):
        leave_wal(busy_wal, rows=20)  # past the reader's snapshot
        r = ls("checkpoint", busy_wal)
        assert r.rc == 0, r
        lines = r.out.splitlines()
        assert lines[0] == "checkpoint PASSIVE [partial]"
        assert lines[1] == field("busy", "no")
        r = ls("checkpoint", busy_wal, "-m", "full", "--busy-timeout", "200")
        assert r.rc == 0, r
        lines = r.out.splitlines()
        assert lines[0] == "checkpoint FULL [busy]"
        assert lines[1] == field("busy", "yes")
        r = ls("--json", "checkpoint", busy_wal, "-m", "full", "--busy-timeout", "200")
        assert (r.json["busy"], r.json["fully_checkpointed"]) == (True, False)


def test_snapshot_text(ls, busy_wal, tmp_path):
    dest = tmp_path / "s.db"
    frames = wal_frames_by_size(busy_wal)
    r = ls("snapshot", busy_wal, dest)
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[:7] == [
        "snapshot complete [checkpoint ok]",
        field("checkpoint busy", "no"),
        field("wal pages", frames),
        field("checkpointed", frames),
        field("destination", dest),
        field("size", commas(os.path.getsize(dest)) + " bytes"),
        field("sha256", sha256(dest)),
    ]
    assert ELAPSED.match(lines[7]), lines[7]
    assert all(l.startswith("  ") and ": " in l for l in lines[8:]), lines


def test_snapshot_partial_and_busy_text(ls, busy_wal, tmp_path):
    with pinned_reader(busy_wal):
        leave_wal(busy_wal, rows=20)
        r = ls("snapshot", busy_wal, tmp_path / "a.db")
        assert r.rc == 0, r
        assert r.out.splitlines()[:2] == ["snapshot complete [checkpoint partial]",
                                          field("checkpoint busy", "no")]
        r = ls("snapshot", busy_wal, tmp_path / "b.db", "-m", "truncate",
               "--busy-timeout", "200")
        assert r.rc == 0, r
        assert r.out.splitlines()[:2] == ["snapshot complete [checkpoint busy]",
                                          field("checkpoint busy", "yes")]
    assert count(tmp_path / "b.db") == 160


def test_backup_text(ls, busy_wal, tmp_path):
    dest = tmp_path / "b.db"
    r = ls("backup", busy_wal, dest)
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[:5] == [
        "backup complete",
        field("source", busy_wal),
        field("destination", dest),
        field("size", commas(os.path.getsize(dest)) + " bytes"),
        field("sha256", sha256(dest)),
    ]
    assert ELAPSED.match(lines[5]), lines[5]
    assert all(l.startswith("  ") and ": " in l for l in lines[6:]), lines


def test_info_text(ls, busy_wal, wal_db):
    r = ls("info", busy_wal)
    assert r.rc == 0, r
    lines = r.out.splitlines()
    size = os.path.getsize(busy_wal)
    pages = count_pages(busy_wal)
    assert lines[:9] == [
        "database info",
        field("path", busy_wal),
        field("size", commas(size) + " bytes"),
        field("journal mode", "wal"),
        field("WAL file", "yes"),
        field("WAL size", commas(os.path.getsize(str(busy_wal) + "-wal")) + " bytes"),
        field("page size", "4,096"),
        field("page count", commas(pages)),
        field("freelist pages", 0),
    ]
    assert all(l.startswith("  ") and ": " in l for l in lines[9:]), lines
    # No WAL file: no "WAL size" line.
    assert not os.path.exists(str(wal_db) + "-wal")
    r = ls("info", wal_db)
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[3:6] == [field("journal mode", "wal"), field("WAL file", "no"),
                          field("page size", "4,096")]


def count_pages(db):
    """SQLite's page count of db (WAL included), read from a copy."""
    import shutil
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        shutil.copyfile(db, os.path.join(d, "c.db"))
        if os.path.exists(str(db) + "-wal"):
            shutil.copyfile(str(db) + "-wal", os.path.join(d, "c.db-wal"))
        conn = sqlite3.connect(os.path.join(d, "c.db"))
        try:
            return conn.execute("PRAGMA page_count").fetchone()[0]
        finally:
            conn.close()


# ---------------------------------------------------------------------------
# A database in rollback-journal mode: nothing to checkpoint, never a -wal


@pytest.mark.parametrize("mode", MODES)
def test_rollback_journal_checkpoint(ls, rollback_db, mode):
    d = os.path.dirname(str(rollback_db))
    before = dir_state(d)
    r = ls("--json", "checkpoint", rollback_db, "-m", mode.lower())
    assert r.rc == 0, r
    j = r.json
    assert j["mode"] == mode
    assert (j["busy"], j["wal_pages"], j["checkpointed_pages"]) == (False, 0, 0)
    assert j["fully_checkpointed"] is True
    r = ls("checkpoint", rollback_db, "-m", mode.lower())
    assert r.rc == 0, r
    assert r.out.splitlines()[:4] == ["checkpoint %s [ok]" % mode, field("busy", "no"),
                                      field("wal pages", 0), field("checkpointed", 0)]
    assert dir_state(d) == before
    assert not os.path.exists(str(rollback_db) + "-wal")
    assert journal_versions(rollback_db) == (1, 1)


def test_rollback_journal_snapshot(ls, rollback_db, tmp_path):
    dest = tmp_path / "out" / "snap.db"
    dest.parent.mkdir()
    d = os.path.dirname(str(rollback_db))
    before = dir_state(d)
    del before["out"]  # where the copies go
    r = ls("--json", "snapshot", rollback_db, dest, "-m", "truncate")
    assert r.rc == 0, r
    c = r.json["checkpoint"]
    assert (c["mode"], c["busy"], c["wal_pages"], c["checkpointed_pages"]) == \
        ("TRUNCATE", False, 0, 0)
    assert c["fully_checkpointed"] is True
    r = ls("snapshot", rollback_db, tmp_path / "out" / "snap2.db")
    assert r.rc == 0, r
    assert r.out.splitlines()[0] == "snapshot complete [checkpoint ok]"
    after = dir_state(d)
    del after["out"]
    assert after == before
    assert journal_versions(rollback_db) == (1, 1)
    assert count(dest) == 30 and integrity(dest) == "ok"


# ---------------------------------------------------------------------------
# A file that is not a database


NOT_A_DB = {
    "text": b"just some text, long enough to have a header\n" * 10,
    "random": bytes((i * 151 + 7) % 256 for i in range(8192)),
    "short": b"hello",
    "bad-header": b"SQLite format 3\x00" + b"\xff" * 84,
}

ONE_SHOT = {
    "checkpoint": lambda f, d: ["checkpoint", f],
    "checkpoint-truncate": lambda f, d: ["checkpoint", f, "-m", "truncate"],
    "snapshot": lambda f, d: ["snapshot", f, d / "out.db"],
    "backup": lambda f, d: ["backup", f, d / "out.db"],
    "backup-timestamped": lambda f, d: ["backup", f],
    "info": lambda f, d: ["info", f],
    "verify": lambda f, d: ["verify", f],
    "restore-o": lambda f, d: ["restore", f, "-o", d / "out.db"],
    "restore-replace": lambda f, d: ["restore", f, "--replace", d / "out.db"],
}


@pytest.mark.parametrize("content", NOT_A_DB.values(), ids=NOT_A_DB.keys())
@pytest.mark.parametrize("cmd", ONE_SHOT.keys())
def test_not_a_database(ls, tmp_path, cmd, content):
    f = tmp_path / "notes.db"
    f.write_bytes(content)
    os.utime(f, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = dir_state(tmp_path)
    r = ls(*ONE_SHOT[cmd](f, tmp_path))
    assert r.rc == 1, r
    assert r.err.startswith("litesafe: "), r.err
    assert "file is not a database" in r.err, r.err
    assert dir_state(tmp_path) == before
    r = ls("--json", *ONE_SHOT[cmd](f, tmp_path))
    assert r.rc == 1, r
    assert r.json["code"] == "ENOTDB"
    assert "file is not a database" in r.json["error"]
    assert dir_state(tmp_path) == before


# ---------------------------------------------------------------------------
# A zero-length file: to SQLite (and sqlite-checkpoint) an empty database


def test_empty_file_checkpoint_is_nothing_to_do(ls, tmp_path):
    f = tmp_path / "empty.db"
    f.write_bytes(b"")
    before = dir_state(tmp_path)
    r = ls("--json", "checkpoint", f, "-m", "truncate")
    assert r.rc == 0, r
    j = r.json
    assert (j["mode"], j["busy"], j["wal_pages"], j["checkpointed_pages"]) == \
        ("TRUNCATE", False, 0, 0)
    assert j["fully_checkpointed"] is True
    r = ls("checkpoint", f)
    assert r.rc == 0, r
    assert r.out.splitlines()[0] == "checkpoint PASSIVE [ok]"
    assert dir_state(tmp_path) == before


def test_empty_file_info(ls, tmp_path):
    f = tmp_path / "empty.db"
    f.write_bytes(b"")
    before = dir_state(tmp_path)
    r = ls("--json", "info", f)
    assert r.rc == 0, r
    j = r.json
    assert (j["size_bytes"], j["journal_mode"], j["wal_file_exists"], j["wal_size_bytes"]) == \
        (0, "delete", False, 0)
    assert (j["page_size"], j["page_count"], j["freelist_count"]) == (4096, 0, 0)
    r = ls("info", f)
    assert r.rc == 0, r
    assert r.out.splitlines()[:3] == ["database info", field("path", f),
                                      field("size", "0 bytes")]
    assert dir_state(tmp_path) == before


@pytest.mark.parametrize("cmd", ["snapshot", "backup", "verify", "restore-o",
                                 "restore-replace"])
def test_empty_file_is_not_copied(ls, tmp_path, cmd):
    """litesafe refuses to copy, verify or restore an empty file (a backup of
    nothing, or a failed one): exit 1, nothing created, the file stays empty."""
    f = tmp_path / "empty.db"
    f.write_bytes(b"")
    before = dir_state(tmp_path)
    r = ls("--json", *ONE_SHOT[cmd](f, tmp_path))
    assert r.rc == 1, r
    assert r.json["code"] == "ENOTDB"
    assert "empty" in r.json["error"]
    assert dir_state(tmp_path) == before


# ---------------------------------------------------------------------------
# Exit codes and options


def test_usage_errors_exit_2(ls, busy_wal, tmp_path):
    before = dir_state(tmp_path)
    for args in (["checkpoint", busy_wal, "-m", "sideways"],
                 ["snapshot", busy_wal, tmp_path / "x.db", "--mode", "sideways"],
                 ["checkpoint"], ["snapshot", busy_wal], ["backup"], ["info"],
                 ["frobnicate", busy_wal]):
        r = ls(*args)
        assert r.rc == 2, (args, r)
    assert dir_state(tmp_path) == before


def test_global_json_flag_and_aliases(ls, busy_wal, tmp_path):
    """sqlite-checkpoint's scripts put --json before the command and use the
    aliases cp, bk and snap."""
    r = ls("--json", "cp", busy_wal, "-m", "full")
    assert r.rc == 0 and r.json["command"] == "checkpoint" and r.json["mode"] == "FULL", r
    r = ls("--json", "bk", busy_wal, tmp_path / "b.db")
    assert r.rc == 0 and r.json["command"] == "backup", r
    r = ls("--json", "snap", busy_wal, tmp_path / "s.db")
    assert r.rc == 0 and r.json["command"] == "snapshot", r


def test_snapshot_refuses_existing_destination(ls, busy_wal, tmp_path):
    dest = tmp_path / "taken.db"
    dest.write_bytes(b"existing")
    r = ls("snapshot", busy_wal, dest)
    assert r.rc == 1, r
    assert dest.read_bytes() == b"existing"
