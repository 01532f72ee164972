"""`litesafe snapshot DB DEST`: checkpoint, then backup. DEST is checked
before the source is touched; a busy checkpoint is reported and the backup
still happens and is complete."""
import os
import sqlite3

import pytest

from conftest import make_db, leave_wal, count, dump, sha256, integrity
from test_checkpoint import (files_state, pinned_reader, rows_in_file_alone,
                             wal_frames_by_size)


@pytest.fixture
def waldb(tmp_path):
    """A WAL database: 100 rows checkpointed, 40 more only in the -wal."""
    db = tmp_path / "app.db"
    make_db(db, rows=100, checkpoint=True).close()
    leave_wal(db, rows=40)
    assert rows_in_file_alone(db, tmp_path) == 100
    return db


def test_snapshot_checkpoints_then_copies(ls, waldb, tmp_path):
    dest = tmp_path / "snap.db"
    frames = wal_frames_by_size(waldb)
    r = ls("snapshot", waldb, dest, "--json")
    assert r.rc == 0, r
    j = r.json
    assert j["command"] == "snapshot"
    c, b = j["checkpoint"], j["backup"]
    assert "command" not in c and "command" not in b
    assert c["database"] == str(waldb)
    assert c["mode"] == "PASSIVE"  # the default: never stalls the application
    assert (c["busy"], c["wal_mode"], c["fully_checkpointed"]) == (False, True, True)
    assert c["wal_pages"] == c["checkpointed_pages"] == frames
    assert b["source"] == str(waldb)
    assert b["destination"] == str(dest)
    assert b["sha256"] == sha256(dest)
    assert b["size_bytes"] == os.path.getsize(dest)
    assert b["page_count"] * b["page_size"] == b["size_bytes"]
    assert b["compact"] is False
    assert j["elapsed_ms"] == c["elapsed_ms"] + b["elapsed_ms"]
    # The checkpoint ran: the database file alone has every row now.
    assert rows_in_file_alone(waldb, tmp_path) == 140
    assert count(dest) == 140
    assert integrity(dest) == "ok"
    assert dump(dest) == dump(waldb)


def test_snapshot_truncate_mode(ls, waldb, tmp_path):
    dest = tmp_path / "snap.db"
    r = ls("snap", waldb, dest, "-m", "TRUNCATE", "--json")  # the alias
    assert r.rc == 0, r
    c = r.json["checkpoint"]
    assert c["mode"] == "TRUNCATE"
    assert (c["busy"], c["wal_pages"], c["checkpointed_pages"]) == (False, 0, 0)
    assert os.path.getsize(str(waldb) + "-wal") == 0
    # Nothing left in the WAL, so the backup read only the database file.
    assert r.json["backup"]["wal_frames"] == 0
    assert count(dest) == 140


def test_text_output(ls, waldb, tmp_path):
    r = ls("snapshot", waldb, tmp_path / "s.db")
    assert r.rc == 0, r
    lines = r.out.splitlines()
    # sqlite-checkpoint's layout: headline, then "  label:" padded to 20 columns.
    assert lines[0] == "snapshot complete [checkpoint ok]"
    assert "  checkpoint mode:    PASSIVE" in lines
    assert "  destination:        %s" % (tmp_path / "s.db") in lines
    assert "  source:             %s" % waldb in lines


def test_existing_dest_leaves_source_untouched(ls, waldb, tmp_path):
    dest = tmp_path / "taken.db"
    dest.write_bytes(b"precious")
    before = files_state(waldb)
    r = ls("snapshot", waldb, dest, "-m", "truncate", "--json")
    assert r.rc == 1, r
    assert r.json["code"] == "EEXIST"
    assert "destination exists" in r.err
    assert dest.read_bytes() == b"precious"
    # Not checkpointed: same files, and the database file alone still lacks the WAL's rows.
    assert files_state(waldb) == before
    assert rows_in_file_alone(waldb, tmp_path) == 100


def test_missing_dest_directory_fails_before_checkpoint(ls, waldb, tmp_path):
    before = files_state(waldb)
    r = ls("snapshot", waldb, tmp_path / "no" / "such" / "dir.db", "-m", "truncate")
    assert r.rc == 1, r
    assert "destination directory" in r.err and "No such file or directory" in r.err
    assert files_state(waldb) == before
    assert rows_in_file_alone(waldb, tmp_path) == 100
    assert not (tmp_path / "no").exists()


def test_busy_checkpoint_still_backs_up(ls, waldb, tmp_path):
    dest = tmp_path / "snap.db"
    with pinned_reader(waldb):
        leave_wal(waldb, rows=20)  # after the reader's snapshot
        r = ls("snapshot", waldb, dest, "-m", "truncate", "--busy-timeout", "300", "--json",
               timeout=60)
        assert r.rc == 0, r
        c = r.json["checkpoint"]
        assert c["busy"] is True
        assert c["fully_checkpointed"] is False
        assert c["checkpointed_pages"] < c["wal_pages"]
        assert "checkpoint busy" in r.err
        # The copy still holds every committed row, WAL included.
        assert r.json["backup"]["wal_frames"] > 0
    assert count(dest) == 160
    assert integrity(dest) == "ok"
    assert r.json["backup"]["sha256"] == sha256(dest)


def test_compact(ls, tmp_path):
    db = tmp_path / "big.db"
    conn = make_db(db, rows=400, blob=1000, checkpoint=True)
    conn.execute("DELETE FROM t WHERE id > 50")
    conn.close()
    leave_wal(db, rows=5)
    dest = tmp_path / "small.db"
    r = ls("snapshot", db, dest, "--compact", "--json")
    assert r.rc == 0, r
    b = r.json["backup"]
    assert b["compact"] is True
    src = sqlite3.connect(str(db))
    src_pages, src_free = (src.execute("PRAGMA page_count").fetchone()[0],
                           src.execute("PRAGMA freelist_count").fetchone()[0])
    src.close()
    assert src_free > 50
    assert b["page_count"] < src_pages
    out = sqlite3.connect(str(dest))
    assert out.execute("PRAGMA freelist_count").fetchone()[0] == 0
    out.close()
    assert count(dest) == 55
    assert b["sha256"] == sha256(dest)


def test_rollback_journal_database(ls, tmp_path):
    db = tmp_path / "rj.db"
    make_db(db, rows=30, wal=False).close()
    r = ls("snapshot", db, tmp_path / "out.db", "--json")
    assert r.rc == 0, r
    c = r.json["checkpoint"]
    assert c["wal_mode"] is False
    assert (c["wal_pages"], c["checkpointed_pages"]) == (0, 0)
    assert (c["busy"], c["fully_checkpointed"]) == (False, True)
    assert "not in WAL mode" in r.err
    assert count(tmp_path / "out.db") == 30
    assert not os.path.exists(str(db) + "-wal")


def test_missing_source(ls, tmp_path):
    r = ls("snapshot", tmp_path / "gone.db", tmp_path / "out.db")
    assert r.rc == 1, r
    assert r.err.startswith("litesafe: snapshot: ")
    assert "gone.db: No such file or directory" in r.err
    assert sorted(os.listdir(tmp_path)) == []


def test_empty_source_stays_empty(ls, tmp_path):
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    r = ls("snapshot", db, tmp_path / "out.db", "--json")
    assert r.rc == 1, r
    assert r.json["code"] == "ENOTDB"
    assert os.path.getsize(db) == 0
    assert sorted(os.listdir(tmp_path)) == ["empty.db"]


def test_not_a_database(ls, tmp_path):
    db = tmp_path / "x.db"
    db.write_bytes(os.urandom(8192))
    r = ls("snapshot", db, tmp_path / "out.db")
    assert r.rc == 1, r
    assert "file is not a database" in r.err
    assert sorted(os.listdir(tmp_path)) == ["x.db"]


def test_bad_mode_touches_nothing(ls, waldb, tmp_path):
    before = files_state(waldb)
    r = ls("snapshot", waldb, tmp_path / "out.db", "--mode", "eventually")
    assert r.rc == 2, r
    assert "unknown mode 'eventually'" in r.err
    assert files_state(waldb) == before
    assert not (tmp_path / "out.db").exists()


def test_usage_errors(ls, waldb, tmp_path):
    r = ls("snapshot", waldb)
    assert r.rc == 2 and "missing argument" in r.err, r
    r = ls("snapshot")
    assert r.rc == 2 and "missing argument" in r.err, r
    r = ls("snapshot", waldb, tmp_path / "a.db", tmp_path / "b.db")
    assert r.rc == 2 and "unexpected argument" in r.err, r
    r = ls("snapshot", waldb, tmp_path / "a.db", "--keep", "3")
    assert r.rc == 2 and "unknown option '--keep'" in r.err, r
    assert not (tmp_path / "a.db").exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_json_errors(ls, waldb, tmp_path, where):
    dest = tmp_path / "taken.db"
    dest.write_bytes(b"x")
    args = ["snapshot", waldb, dest]
    args = ["--json"] + args if where == "before" else args + ["--json"]
    r = ls(*args)
    assert r.rc == 1, r
    j = r.json
    assert (j["command"], j["code"], j["exit_code"]) == ("snapshot", "EEXIST", 1)
    assert "destination exists" in j["error"]
    args = ["snapshot", waldb]
    args = ["--json"] + args if where == "before" else args + ["--json"]
    r = ls(*args)
    assert r.rc == 2, r
    assert (r.json["command"], r.json["code"]) == ("snapshot", "EUSAGE")
