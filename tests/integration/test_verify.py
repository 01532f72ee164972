"""`litesafe verify FILE [--sha256 HEX]`: integrity check and hash check.

verify must never write next to FILE: every run here that expects success
compares the directory before and after. Corruptions are chosen so that
SQLite's integrity_check (or its open) really detects them.
"""
import os
import shutil
import sqlite3

import pytest

from conftest import make_db, leave_wal, sha256

PAGE = 4096


def listing(d):
    return sorted(os.listdir(d))


@pytest.fixture
def backup(tmp_path, ls):
    """A WAL-mode backup file (header bytes 18/19 == 2) with no -wal next to it."""
    src = tmp_path / "src" / "app.db"
    src.parent.mkdir()
    make_db(src, rows=400, blob=200).close()
    d = tmp_path / "bk"
    d.mkdir()
    dest = d / "app-backup.db"
    r = ls("backup", src, dest, "--json")
    assert r.rc == 0, r
    with open(dest, "rb") as f:
        hdr = f.read(100)
    assert hdr[18] == 2 and hdr[19] == 2
    assert listing(d) == ["app-backup.db"]
    return dest


def page_types(path):
    """(page number, b-tree page type byte) of every page."""
    data = open(path, "rb").read()
    out = []
    for pg in range(1, len(data) // PAGE + 1):
        off = (pg - 1) * PAGE + (100 if pg == 1 else 0)
        out.append((pg, data[off]))
    return out


def patch(path, off, data):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)


def test_good_file_json_and_nothing_written(ls, backup):
    before = listing(backup.parent)
    r = ls("verify", backup, "--json")
    assert r.rc == 0, r
    j = r.json
    assert j["command"] == "verify"
    assert j["path"] == str(backup)
    assert j["size_bytes"] == os.path.getsize(backup)
    assert j["sha256"] == sha256(backup)
    assert j["sha256_match"] is None
    assert "sha256_expected" not in j
    assert j["integrity_ok"] is True
    assert j["integrity"] == "ok"
    assert j["page_size"] == PAGE
    assert j["page_count"] == os.path.getsize(backup) // PAGE
    assert j["journal_mode"] == "wal"
    assert j["ok"] is True
    # No -wal, no -shm: the WAL-mode file was opened immutable.
    assert listing(backup.parent) == before


def test_text_output(ls, backup):
    r = ls("verify", backup)
    assert r.rc == 0, r
    assert "integrity_ok: yes" in r.out
    assert "sha256: " + sha256(backup) in r.out
    assert "ok: yes" in r.out


def test_json_flag_before_command(ls, backup):
    r = ls("--json", "verify", backup)
    assert r.rc == 0, r
    assert r.json["integrity_ok"] is True


def test_right_hash_in_upper_case(ls, backup):
    digest = sha256(backup).upper()
    r = ls("verify", backup, "--sha256", digest, "--json")
    assert r.rc == 0, r
    j = r.json
    assert j["sha256_match"] is True
    assert j["sha256_expected"] == digest
    assert j["ok"] is True


def test_wrong_hash(ls, backup):
    wrong = "0" * 64
    r = ls("verify", backup, "--sha256", wrong, "--json")
    assert r.rc == 1, r
    res, err = r.jsons[0], r.jsons[-1]
    assert res["sha256_match"] is False
    assert res["integrity_ok"] is True
    assert res["ok"] is False
    assert res["sha256"] == sha256(backup)
    assert err["code"] == "ECORRUPT"
    assert "SHA-256 mismatch" in err["error"]
    assert "litesafe: verify: " in r.err and "SHA-256 mismatch" in r.err


@pytest.mark.parametrize("bad", ["abc", "g" * 64, "0" * 63, "0" * 65, ""])
def test_malformed_hash_is_usage_error(ls, backup, bad):
    r = ls("verify", backup, "--sha256", bad, "--json")
    assert r.rc == 2, r
    assert r.json["code"] == "EUSAGE"
    assert "64 hex digits" in r.json["error"]


def test_corrupt_btree_page_header(ls, backup):
    """A table leaf page whose page-type byte is invalid."""
    leaves = [pg for pg, t in page_types(backup) if t == 0x0D and pg > 2]
    assert leaves, page_types(backup)
    patch(backup, (leaves[0] - 1) * PAGE, b"\xff")
    r = ls("verify", backup, "--json")
    assert r.rc == 1, r
    res, err = r.jsons[0], r.jsons[-1]
    assert res["integrity_ok"] is False
    assert res["ok"] is False
    assert "Page %d" % leaves[0] in res["integrity"]
    assert "\n" not in res["integrity"]
    assert err["code"] == "ECORRUPT"
    assert "integrity check failed" in err["error"]
    assert "integrity check failed" in r.err


def test_corrupt_cell_pointer(ls, backup):
    """A cell pointer far outside its page: integrity_check reports the offset."""
    leaves = [pg for pg, t in page_types(backup) if t == 0x0D and pg > 2]
    patch(backup, (leaves[-1] - 1) * PAGE + 8, b"\xff\xf0")
    r = ls("verify", backup, "--json")
    assert r.rc == 1, r
    assert r.jsons[0]["integrity_ok"] is False
    assert "out of range" in r.jsons[0]["integrity"]


def test_corrupt_schema_page(ls, backup):
    """Page 1's sqlite_schema b-tree header is garbage: SQLite cannot even read the schema."""
    patch(backup, 100, b"\x55" * 100)
    r = ls("verify", backup, "--json")
    assert r.rc == 1, r
    res = r.jsons[0]
    assert res["integrity_ok"] is False
    assert "malformed" in res["integrity"]
    assert r.jsons[-1]["code"] == "ECORRUPT"


def test_not_a_database(ls, backup):
    patch(backup, 0, b"this is no sqlite")
    r = ls("verify", backup)
    assert r.rc == 1, r
    assert "litesafe: verify: " in r.err
    assert "file is not a database" in r.err
    assert "not an SQLite database" in r.err


def test_truncated_file(ls, backup):
    size = os.path.getsize(backup)
    with open(backup, "r+b") as f:
        f.truncate(size // 2)
    r = ls("verify", backup, "--json")
    assert r.rc == 1, r
    res = r.jsons[0]
    assert res["integrity_ok"] is False
    assert res["size_bytes"] == size // 2
    assert r.jsons[-1]["code"] == "ECORRUPT"


def test_empty_file(ls, tmp_path):
    p = tmp_path / "empty.db"
    p.write_bytes(b"")
    r = ls("verify", p, "--json")
    assert r.rc == 1, r
    assert r.json["code"] == "ENOTDB"
    assert "empty" in r.json["error"]
    assert listing(tmp_path) == ["empty.db"]


def test_missing_file_is_not_created(ls, tmp_path):
    p = tmp_path / "missing.db"
    r = ls("verify", p, "--json")
    assert r.rc == 1, r
    assert r.json["code"] == "ENOENT"
    assert "missing.db" in r.json["error"]
    assert listing(tmp_path) == []


def test_wrong_argument_count(ls, backup):
    assert ls("verify").rc == 2
    assert ls("verify", backup, backup).rc == 2


def test_uri_special_characters_in_name(ls, tmp_path, backup):
    """'%41' must not be decoded to 'A': the file verified is the one named."""
    good = tmp_path / "bk" / "x%41?y#z.db"
    shutil.copyfile(backup, good)
    decoy = tmp_path / "bk" / "xA"
    decoy.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    before = listing(good.parent)
    r = ls("verify", good, "--json")
    assert r.rc == 0, r
    assert r.json["path"] == str(good)
    assert r.json["sha256"] == sha256(good)
    assert r.json["integrity_ok"] is True
    assert listing(good.parent) == before


def test_live_wal_is_part_of_the_check(ls, tmp_path):
    """With a -wal next to it, verify sees the committed WAL content too."""
    db = tmp_path / "live.db"
    make_db(db, rows=50, checkpoint=True).close()
    leave_wal(db, rows=300, blob=500)
    assert os.path.getsize(str(db) + "-wal") > 0
    r = ls("verify", db, "--json")
    assert r.rc == 0, r
    j = r.json
    assert j["integrity_ok"] is True
    conn = sqlite3.connect(str(db))
    try:
        assert j["page_count"] == conn.execute("PRAGMA page_count").fetchone()[0]
    finally:
        conn.close()
    # More pages than the main file holds: the WAL was read.
    assert j["page_count"] * PAGE > j["size_bytes"]


def test_rollback_mode_file(ls, tmp_path):
    db = tmp_path / "rb.db"
    make_db(db, rows=100, wal=False).close()
    before = listing(tmp_path)
    r = ls("verify", db, "--json")
    assert r.rc == 0, r
    assert r.json["journal_mode"] == "delete"
    assert r.json["integrity_ok"] is True
    assert listing(tmp_path) == before
