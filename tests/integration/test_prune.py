"""`litesafe prune DIR --keep N | --keep-within DURATION [--dry-run]`.

Backups are files named <name>-YYYYMMDDTHHMMSSZ.db; their age comes from the
name, never from mtime. Everything else in DIR must survive untouched.
"""
import os
import time

import pytest

STAMP = "%Y%m%dT%H%M%SZ"


def stamp(t):
    return time.strftime(STAMP, time.gmtime(t))


def mk(d, name, size=10, mtime=None):
    p = d / name
    p.write_bytes(b"x" * size)
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


def names(d):
    return sorted(os.listdir(d))


@pytest.fixture
def bystanders(tmp_path):
    """Files and directories that look like backups but are not."""
    d = tmp_path
    mk(d, "app-20200101T000000Z.db.tmp")
    mk(d, ".app-20200101T000000Z.db.1234.litesafe-tmp")
    mk(d, "app-20200101T000000Z.db-wal")
    mk(d, "app-20201301T000000Z.db")      # month 13
    mk(d, "app-20200230T000000Z.db")      # 30 February
    mk(d, "app-20200101T240000Z.db")      # hour 24
    mk(d, "app-2020010T000000Z.db")       # a digit short
    mk(d, "-20200101T000000Z.db")         # no name
    mk(d, "app-20200101T000000z.db")      # lower-case z
    mk(d, "notes.txt")
    (d / "dir-20200101T000000Z.db").mkdir()
    os.symlink(str(d / "notes.txt"), str(d / "link-20200101T000000Z.db"))
    return set(os.listdir(d))


def test_keep_n_per_name(ls, tmp_path, bystanders):
    d = tmp_path
    app = ["app-2024010%dT120000Z.db" % i for i in range(1, 6)]   # 5 backups of app
    oth = ["other.v2-2023120%dT000000Z.db" % i for i in range(1, 4)]  # 3 of other.v2
    for n in app + oth:
        mk(d, n, size=100)
    r = ls("prune", d, "--keep", "2", "--json")
    assert r.rc == 0, r
    j = r.json
    expect_deleted = sorted(str(d / n) for n in app[:3] + oth[:1])
    assert sorted(j["deleted"]) == expect_deleted
    assert j["command"] == "prune"
    assert j["dir"] == str(d)
    assert j["dry_run"] is False
    assert j["examined"] == 8
    assert j["kept"] == 4
    assert j["deleted_count"] == 4
    assert j["bytes_freed"] == 400
    assert set(names(d)) == bystanders | set(app[3:] + oth[1:])


def test_age_comes_from_the_name_not_mtime(ls, tmp_path):
    d = tmp_path
    now = time.time()
    old = mk(d, "db-20200101T000000Z.db", mtime=now)          # touched just now
    new = mk(d, "db-20240101T000000Z.db", mtime=now - 10**8)  # mtime very old
    r = ls("prune", d, "--keep", "1", "--json")
    assert r.rc == 0, r
    assert r.json["deleted"] == [str(old)]
    assert names(d) == [new.name]


def test_keep_within(ls, tmp_path, bystanders):
    d = tmp_path
    now = int(time.time())
    fresh = ["db-%s.db" % stamp(now - 3600), "db-%s.db" % stamp(now - 2 * 86400)]
    stale = ["db-%s.db" % stamp(now - 10 * 86400), "db-%s.db" % stamp(now - 30 * 86400)]
    for n in fresh + stale:
        mk(d, n)
    r = ls("prune", d, "--keep-within", "3d", "--json")
    assert r.rc == 0, r
    assert sorted(r.json["deleted"]) == sorted(str(d / n) for n in stale)
    assert set(names(d)) == bystanders | set(fresh)


def test_keep_within_go_syntax(ls, tmp_path):
    d = tmp_path
    now = int(time.time())
    keep = "db-%s.db" % stamp(now - 60)
    drop = "db-%s.db" % stamp(now - 7200)
    mk(d, keep)
    mk(d, drop)
    r = ls("prune", d, "--keep-within", "1h30m", "--json")
    assert r.rc == 0, r
    assert r.json["deleted"] == [str(d / drop)]


def test_newest_always_survives(ls, tmp_path):
    d = tmp_path
    olds = ["a-2001010%dT000000Z.db" % i for i in range(1, 4)]
    for n in olds:
        mk(d, n)
    r = ls("prune", d, "--keep-within", "1d", "--json")
    assert r.rc == 0, r
    assert names(d) == [olds[-1]]
    assert r.json["kept"] == 1 and r.json["deleted_count"] == 2


def test_both_rules_are_a_union(ls, tmp_path):
    d = tmp_path
    now = int(time.time())
    t = [now - h * 3600 for h in (1, 2, 50, 100, 200)]   # newest first
    ns = ["db-%s.db" % stamp(x) for x in t]
    for n in ns:
        mk(d, n)
    # --keep 3 keeps the three newest; --keep-within 1d keeps the first two:
    # the union is the three newest.
    r = ls("prune", d, "--keep", "3", "--keep-within", "1d", "--json")
    assert r.rc == 0, r
    assert sorted(names(d)) == sorted(ns[:3])
    # --keep 1 with --keep-within 3d: within keeps 1h, 2h, 50h.
    r = ls("prune", d, "--keep", "1", "--keep-within", "3d", "--json")
    assert r.rc == 0, r
    assert sorted(names(d)) == sorted(ns[:3])
    r = ls("prune", d, "--keep", "1", "--keep-within", "90m", "--json")
    assert r.rc == 0, r
    assert names(d) == [ns[0]]


def test_future_timestamp_counts_as_newest(ls, tmp_path):
    d = tmp_path
    now = int(time.time())
    future = "db-%s.db" % stamp(now + 365 * 86400)
    recent = "db-%s.db" % stamp(now - 60)
    mk(d, future)
    mk(d, recent)
    r = ls("prune", d, "--keep", "1", "--json")
    assert r.rc == 0, r
    assert names(d) == [future]
    assert r.json["deleted"] == [str(d / recent)]


def test_dry_run_deletes_nothing(ls, tmp_path):
    d = tmp_path
    ns = ["db-2024010%dT000000Z.db" % i for i in range(1, 5)]
    for n in ns:
        mk(d, n, size=7)
    r = ls("prune", d, "--keep", "1", "--dry-run", "--json")
    assert r.rc == 0, r
    j = r.json
    assert j["dry_run"] is True
    assert sorted(j["deleted"]) == sorted(str(d / n) for n in ns[:3])
    assert j["bytes_freed"] == 21
    assert names(d) == ns


def test_text_output_one_line_per_deleted_file(ls, tmp_path):
    d = tmp_path
    ns = ["db-2024010%dT000000Z.db" % i for i in range(1, 4)]
    for n in ns:
        mk(d, n)
    r = ls("prune", d, "--keep", "1")
    assert r.rc == 0, r
    lines = r.out.splitlines()
    for n in ns[:2]:
        assert str(d / n) in lines
    assert not any(ns[2] in l for l in lines)
    assert "deleted_count: 2" in lines


def test_nothing_to_do(ls, tmp_path, bystanders):
    r = ls("prune", tmp_path, "--keep", "1", "--json")
    assert r.rc == 0, r
    assert r.json["examined"] == 0 and r.json["deleted"] == []
    assert set(names(tmp_path)) == bystanders


def test_missing_dir(ls, tmp_path):
    r = ls("prune", tmp_path / "nope", "--keep", "1", "--json")
    assert r.rc == 1, r
    assert r.json["code"] == "ENOENT"
    assert "nope" in r.json["error"]
    assert not (tmp_path / "nope").exists()


def test_dir_is_a_file(ls, tmp_path):
    f = mk(tmp_path, "plain")
    r = ls("prune", f, "--keep", "1")
    assert r.rc == 1, r
    assert "plain" in r.err


@pytest.mark.parametrize("args,what", [
    ((), "--keep"),
    (("--keep", "0"), "at least 1"),
    (("--keep", "-2"), "at least 1"),
    (("--keep", "x"), "not a number"),
    (("--keep-within", "soon"), "invalid duration"),
    (("--keep-within", "-1h"), "invalid duration"),
])
def test_usage_errors(ls, tmp_path, args, what):
    mk(tmp_path, "db-20240101T000000Z.db")
    mk(tmp_path, "db-20240102T000000Z.db")
    # --json first: an option error stops parsing before a later --json is seen.
    r = ls("--json", "prune", tmp_path, *args)
    assert r.rc == 2, r
    assert r.json["code"] == "EUSAGE"
    assert what in r.json["error"]
    assert len(names(tmp_path)) == 2


def test_backup_files_made_by_backup_are_recognised(ls, tmp_path):
    """The names `backup --dir` writes are the ones prune works on."""
    import sqlite3
    src = tmp_path / "app.db"
    conn = sqlite3.connect(str(src))
    conn.execute("CREATE TABLE t(x)")
    conn.commit()
    conn.close()
    bdir = tmp_path / "bk"
    r = ls("backup", src, "--dir", bdir, "--json")
    assert r.rc == 0, r
    made = os.path.basename(r.json["destination"])
    older = "app-20000101T000000Z.db"
    mk(bdir, older)
    r = ls("prune", bdir, "--keep", "1", "--json")
    assert r.rc == 0, r
    assert r.json["deleted"] == [str(bdir / older)]
    assert names(bdir) == [made]
