"""`litesafe info DB`: strictly read-only inspection.

Every successful `info` here goes through read_only_info(), which records the
directory (names, sizes, mtimes, SHA-256 of every file) before and after and
fails if anything changed. Figures are compared with SQLite's own answers,
obtained afterwards on a copy of the files so the original is never opened.
"""
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import time

import pytest

from conftest import BIN, make_db, leave_wal, dir_state

PAGE = 4096




def read_only_info(ls, db, *extra):
    """Run `info DB --json`, check it exited 0 and changed nothing; return the JSON."""
    d = os.path.dirname(str(db))
    before = dir_state(d)
    r = ls("info", db, "--json", *extra)
    assert r.rc == 0, r
    assert dir_state(d) == before, "info changed the directory"
    j = r.json
    j["_stderr"] = r.err
    return j


def sqlite_view(db, tmp):
    """SQLite's figures for db, read from a copy of the database and its -wal."""
    d = tmp / ("copy-%d" % time.monotonic_ns())
    d.mkdir()
    shutil.copyfile(db, d / "c.db")
    if os.path.exists(str(db) + "-wal"):
        shutil.copyfile(str(db) + "-wal", d / "c.db-wal")
    conn = sqlite3.connect(str(d / "c.db"), isolation_level=None)
    try:
        v = {k: conn.execute("PRAGMA " + k).fetchone()[0]
             for k in ("page_count", "freelist_count", "schema_version", "encoding",
                       "page_size", "journal_mode")}
        v["rows"] = conn.execute("SELECT count(*) FROM t").fetchone()[0]
        # nLog of a passive checkpoint: the WAL's committed frames as SQLite sees them.
        v["wal_frames"] = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        return v
    finally:
        conn.close()


def db_header(db):
    """(page_count, freelist_count, schema_cookie) stored in the database file itself."""
    with open(db, "rb") as f:
        h = f.read(100)
    return struct.unpack(">I", h[28:32])[0], struct.unpack(">I", h[36:40])[0], \
        struct.unpack(">I", h[40:44])[0]


def wal_header(db):
    with open(str(db) + "-wal", "rb") as f:
        h = f.read(32)
    magic, version, psz, seq, s1, s2 = struct.unpack(">6I", h[:24])
    return {"page_size": psz, "seq": seq, "salt1": s1, "salt2": s2}


def child_sql(db, *stmts):
    """Run statements in a child that exits without closing its connection, so
    whatever it wrote stays in the -wal (committed or not)."""
    code = ("import os, sqlite3, sys\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "for s in sys.argv[2:]:\n"
            "    db.execute(s)\n"
            "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code, str(db)] + list(stmts), check=True)


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def waldb(data):
    """100 rows in the database file, 30 one-row transactions only in the -wal."""
    db = data / "app.db"
    make_db(db, rows=100, checkpoint=True).close()
    assert not os.path.exists(str(db) + "-wal")
    leave_wal(db, rows=30)
    return db


def test_wal_with_committed_frames(ls, waldb, tmp_path):
    j = read_only_info(ls, waldb)
    frames = (os.path.getsize(str(waldb) + "-wal") - 32) // (24 + PAGE)
    hdr = wal_header(waldb)
    assert j["command"] == "info"
    assert j["path"] == str(waldb)
    assert j["size_bytes"] == os.path.getsize(waldb)
    assert j["journal_mode"] == "wal"
    assert j["page_size"] == PAGE
    assert (j["wal_file_exists"], j["wal_header_valid"], j["shm_file_exists"]) == (True,) * 3
    assert j["wal_size_bytes"] == os.path.getsize(str(waldb) + "-wal")
    assert j["wal_frames"] == j["wal_frames_total"] == j["wal_last_commit_frame"] == frames
    assert j["wal_commits"] == 30
    assert j["wal_salt1"] == "0x%08x" % hdr["salt1"]
    assert j["wal_salt2"] == "0x%08x" % hdr["salt2"]
    assert j["wal_checkpoint_seq"] == hdr["seq"]
    assert j["journal_file_exists"] is False
    assert j["text_encoding"] == "UTF-8"
    # The WAL still has its frames (read_only_info checked the bytes), and
    # SQLite agrees with every figure.
    v = sqlite_view(waldb, tmp_path)
    assert v["rows"] == 130
    assert j["page_count"] == v["page_count"]
    assert j["page_count"] > db_header(waldb)[0]  # grown in the WAL only
    assert j["freelist_count"] == v["freelist_count"]
    assert j["schema_cookie"] == v["schema_version"]
    assert j["wal_frames"] == v["wal_frames"]


def test_wal_mode_without_wal_or_shm_files(ls, data, tmp_path):
    db = data / "closed.db"
    make_db(db, rows=50).close()  # the last close checkpoints and removes them
    assert sorted(os.listdir(data)) == ["closed.db"]
    j = read_only_info(ls, db)
    assert sorted(os.listdir(data)) == ["closed.db"]  # still no -wal, no -shm
    assert j["journal_mode"] == "wal"
    assert (j["wal_file_exists"], j["shm_file_exists"], j["wal_header_valid"]) == (False,) * 3
    assert (j["wal_size_bytes"], j["wal_frames"], j["wal_frames_total"]) == (0, 0, 0)
    assert j["wal_salt1"] == "0x00000000"
    assert j["page_count"] == db_header(db)[0] == os.path.getsize(db) // PAGE
    v = sqlite_view(db, tmp_path)
    assert (j["page_count"], j["freelist_count"]) == (v["page_count"], v["freelist_count"])


def test_freelist_and_schema_cookie_come_from_the_wal(ls, data, tmp_path):
    db = data / "fl.db"
    make_db(db, rows=300, blob=1000, checkpoint=True).close()
    file_pages, file_free, file_cookie = db_header(db)
    assert file_free == 0
    child_sql(db, "DELETE FROM t WHERE id > 20", "CREATE TABLE u(x)")
    j = read_only_info(ls, db)
    v = sqlite_view(db, tmp_path)
    assert v["freelist_count"] > 50
    assert j["freelist_count"] == v["freelist_count"]
    assert j["schema_cookie"] == v["schema_version"] == file_cookie + 1
    assert j["page_count"] == v["page_count"]
    assert db_header(db) == (file_pages, file_free, file_cookie)  # the file still says so
    assert j["wal_commits"] == 2


def test_garbage_tail_does_not_count(ls, waldb, tmp_path):
    clean = read_only_info(ls, waldb)
    with open(str(waldb) + "-wal", "ab") as f:
        f.write(os.urandom(3 * (24 + PAGE) + 1000))
    j = read_only_info(ls, waldb)
    assert j["wal_frames"] == clean["wal_frames"] > 0
    assert j["wal_last_commit_frame"] == clean["wal_last_commit_frame"]
    assert j["wal_commits"] == clean["wal_commits"]
    assert j["wal_frames_total"] == clean["wal_frames_total"] + 3
    assert j["wal_size_bytes"] == clean["wal_size_bytes"] + 3 * (24 + PAGE) + 1000
    assert j["page_count"] == clean["page_count"]
    v = sqlite_view(waldb, tmp_path)
    assert (v["wal_frames"], v["page_count"]) == (j["wal_frames"], j["page_count"])


def test_uncommitted_frames_do_not_count(ls, waldb, tmp_path):
    committed = read_only_info(ls, waldb)
    # A transaction too big for its cache spills valid frames into the WAL,
    # then its process dies before the commit frame is written.
    child_sql(waldb, "PRAGMA cache_size=2", "BEGIN",
              "INSERT INTO t(v) SELECT randomblob(3000) FROM t")
    j = read_only_info(ls, waldb)
    assert j["wal_frames_total"] > committed["wal_frames_total"] + 10
    assert j["wal_frames"] == committed["wal_frames"]
    assert j["wal_commits"] == committed["wal_commits"]
    assert j["page_count"] == committed["page_count"]
    v = sqlite_view(waldb, tmp_path)
    assert v["rows"] == 130
    assert (v["wal_frames"], v["page_count"]) == (j["wal_frames"], j["page_count"])


def test_corrupt_wal_header(ls, waldb, tmp_path):
    with open(str(waldb) + "-wal", "r+b") as f:
        f.seek(16)  # salt-1: the header checksum no longer matches
        b = f.read(1)
        f.seek(16)
        f.write(bytes([b[0] ^ 0xff]))
    j = read_only_info(ls, waldb)
    assert j["wal_file_exists"] is True
    assert j["wal_header_valid"] is False
    assert (j["wal_frames"], j["wal_commits"], j["wal_last_commit_frame"]) == (0, 0, 0)
    assert j["wal_frames_total"] > 0
    assert j["page_count"] == db_header(waldb)[0]
    assert "invalid WAL header" in j["_stderr"]
    v = sqlite_view(waldb, tmp_path)
    assert v["rows"] == 100  # SQLite ignores that WAL as well
    assert j["page_count"] == v["page_count"]


def test_rollback_journal_database(ls, data, tmp_path):
    db = data / "rj.db"
    make_db(db, rows=80, wal=False).close()
    j = read_only_info(ls, db)
    assert j["journal_mode"] == "delete"
    assert "not in WAL mode" in j["_stderr"]
    assert (j["wal_file_exists"], j["wal_header_valid"], j["shm_file_exists"]) == (False,) * 3
    assert (j["wal_frames"], j["wal_frames_total"], j["wal_commits"]) == (0, 0, 0)
    assert (j["wal_salt1"], j["wal_salt2"]) == ("0x00000000", "0x00000000")
    v = sqlite_view(db, tmp_path)
    assert v["journal_mode"] == "delete"
    assert (j["page_count"], j["freelist_count"]) == (v["page_count"], v["freelist_count"])
    assert j["schema_cookie"] == v["schema_version"]
    # A leftover -journal is reported (and left alone).
    (data / "rj.db-journal").write_bytes(b"")
    assert read_only_info(ls, db)["journal_file_exists"] is True


def test_page_size_and_encoding(ls, data, tmp_path):
    db = data / "u16.db"
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute("PRAGMA encoding='UTF-16le'")
    conn.execute("PRAGMA page_size=1024")
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    conn.close()
    leave_wal(db, rows=40)
    j = read_only_info(ls, db)
    v = sqlite_view(db, tmp_path)
    assert j["page_size"] == v["page_size"] == 1024
    assert j["text_encoding"] == v["encoding"] == "UTF-16le"
    assert j["wal_frames_total"] == (os.path.getsize(str(db) + "-wal") - 32) // (24 + 1024)
    assert j["wal_frames"] == v["wal_frames"] > 0
    assert j["page_count"] == v["page_count"]


def test_meta_dirs(ls, waldb):
    d = os.path.dirname(str(waldb))
    j = read_only_info(ls, waldb)
    assert j["meta_dir"] == os.path.join(d, ".app.db-litesafe")
    assert (j["meta_dir_exists"], j["litestream_meta_dir_exists"]) == (False, False)
    os.mkdir(os.path.join(d, ".app.db-litesafe"))
    os.mkdir(os.path.join(d, ".app.db-litestream"))
    j = read_only_info(ls, waldb)
    assert (j["meta_dir_exists"], j["litestream_meta_dir_exists"]) == (True, True)


def test_text_output(ls, waldb):
    before = dir_state(os.path.dirname(str(waldb)))
    r = ls("info", waldb)
    assert r.rc == 0, r
    assert dir_state(os.path.dirname(str(waldb))) == before
    lines = r.out.splitlines()
    # sqlite-checkpoint's layout: headline, then "  label:" padded to 20 columns.
    assert lines[0] == "database info"
    assert "  journal mode:       wal" in lines
    assert "  WAL commits:        30" in lines
    assert "  page size:          4,096" in lines


def test_relative_path(ls, waldb):
    d = os.path.dirname(str(waldb))
    before = dir_state(d)
    r = subprocess.run([os.path.abspath(BIN), "info", "app.db",
                        "--json"], cwd=d, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    assert dir_state(d) == before
    assert json.loads(r.stdout)["path"] == str(waldb)


def test_live_writer(ls, data, tmp_path):
    """info while another process writes (and auto-checkpoints, restarting the WAL)."""
    db = data / "live.db"
    make_db(db, rows=10).close()
    code = ("import os, sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('PRAGMA wal_autocheckpoint=50')\n"
            "end = time.time() + 2\n"
            "while time.time() < end:\n"
            "    db.execute('INSERT INTO t(v) VALUES(randomblob(500))')\n"
            "os._exit(0)\n")
    w = subprocess.Popen([sys.executable, "-c", code, str(db)])
    start = os.path.getsize(db) // PAGE
    seen = 0
    try:
        while w.poll() is None:
            r = ls("info", db, "--json")
            assert r.rc == 0, r
            j = r.json
            assert j["page_count"] >= start
            assert j["wal_frames"] <= j["wal_frames_total"] or not j["wal_header_valid"]
            seen += 1
    finally:
        w.wait(timeout=30)
    assert seen > 3
    j = read_only_info(ls, db)
    v = sqlite_view(db, tmp_path)
    assert (j["page_count"], j["freelist_count"]) == (v["page_count"], v["freelist_count"])


def test_missing_database_is_not_created(ls, data):
    r = ls("info", data / "ghost.db")
    assert r.rc == 1, r
    assert r.err.startswith("litesafe: info: ")
    assert "ghost.db: No such file or directory" in r.err
    assert os.listdir(data) == []


def test_empty_file(ls, data):
    """To SQLite a zero-length file is an empty database: reported as one
    (sqlite-checkpoint's figures), with a note, and left as it is."""
    db = data / "empty.db"
    db.write_bytes(b"")
    j = read_only_info(ls, db)
    assert (j["size_bytes"], j["journal_mode"], j["page_size"], j["page_count"]) == \
        (0, "delete", 4096, 0)
    assert (j["freelist_count"], j["wal_file_exists"], j["text_encoding"]) == (0, False, "UTF-8")
    assert "empty file" in j["_stderr"]
    assert os.path.getsize(db) == 0
    # SQLite ignores a -wal next to an empty database: it changes no figure.
    shutil.copyfile(str(make_waldb(data)) + "-wal", str(db) + "-wal")
    j = read_only_info(ls, db)
    assert (j["page_count"], j["freelist_count"], j["wal_file_exists"]) == (0, 0, True)


def make_waldb(d):
    db = d / "other.db"
    make_db(db, rows=10, checkpoint=True).close()
    leave_wal(db, rows=3)
    return db


def test_not_a_database(ls, data):
    db = data / "junk.db"
    db.write_bytes(b"SQLite format 2\0" + os.urandom(200))
    before = dir_state(data)
    r = ls("info", db, "--json")
    assert r.rc == 1, r
    assert (r.json["code"], r.json["command"]) == ("ENOTDB", "info")
    assert "file is not a database" in r.json["error"]
    assert dir_state(data) == before


def test_usage_errors(ls, waldb):
    r = ls("info")
    assert r.rc == 2 and "missing argument" in r.err, r
    r = ls("info", waldb, waldb)
    assert r.rc == 2 and "unexpected argument" in r.err, r
    r = ls("info", waldb, "--mode", "x")
    assert r.rc == 2 and "unknown option '--mode'" in r.err, r


@pytest.mark.parametrize("where", ["before", "after"])
def test_json_errors(ls, data, where):
    db = data / "nope.db"
    r = ls(*(["--json", "info", db] if where == "before" else ["info", db, "--json"]))
    assert r.rc == 1, r
    j = r.json
    assert (j["command"], j["code"], j["exit_code"]) == ("info", "ENOENT", 1)
    assert "nope.db" in j["error"]
    r = ls(*(["--json", "info"] if where == "before" else ["info", "--json"]))
    assert r.rc == 2, r
    assert (r.json["command"], r.json["code"]) == ("info", "EUSAGE")
    assert os.listdir(data) == []
