"""Nothing is ever published next to a foreign -wal, -shm or -journal.

SQLite pairs a database file with "<db>-wal", "<db>-shm" and "<db>-journal"
by name alone. A fresh file published where another database's WAL was left
gets that WAL replayed into it on its next open, so it opens with the other
database's rows; a hot journal is rolled back into it
(sqlite.org/howtocorrupt.html, section 1.4). Every command that publishes a
database file must therefore refuse while such a sibling exists: restore from
a replica (-o, or the configured database path), restore from a backup file
(-o, or --replace of a database that does not exist), backup (DEST, the
timestamped default, --dir, --compact, --watch) and snapshot. A refusal exits
1, names the sibling, leaves it untouched and writes nothing: no output, no
temp file, and for snapshot not even the checkpoint of the source.

The siblings planted here are real: the -wal and -shm of another live WAL
database whose whole content (7 rows) is in its WAL, and the hot journal of a
rollback-mode database whose writer died mid-transaction.
test_planted_wal_really_replays shows the -wal would take over a file
published next to it.

The sibling must also be caught when it appears while the command runs (it
is checked again right before the final rename, in fsutil's ls_publish):
test_sibling_appearing_during_a_backup holds a lock that the backup waits
for after its first checks, creates the sibling meanwhile, then lets it go on.
tests/unit/test_publish.c checks the same at the level of ls_publish.
"""
import datetime
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, run, make_db, leave_wal, leave_hot_journal, count, integrity, sha256
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, replicator, file_url, write_config, digest, wait_replicated)

SUFFIXES = ["-wal", "-shm", "-journal"]
STRANGER_ROWS = 7


def dir_state(d):
    """Names, sizes and SHA-256 of every entry of d (recursively)."""
    out = {}
    for root, dirs, files in os.walk(str(d)):
        for name in sorted(dirs + files):
            p = os.path.join(root, name)
            st = os.lstat(p)
            out[os.path.relpath(p, str(d))] = (
                st.st_size, sha256(p) if stat.S_ISREG(st.st_mode) else None)
    return out


def rows_as_opened(db):
    """count(*) of t in db as SQLite opens it with its siblings, read from a
    copy so that the originals stay as they are."""
    tmp = tempfile.mkdtemp()
    try:
        c = os.path.join(tmp, "c.db")
        shutil.copyfile(str(db), c)
        for s in SUFFIXES:
            if os.path.exists(str(db) + s):
                shutil.copyfile(str(db) + s, c + s)
        try:
            return count(c)
        except sqlite3.DatabaseError as e:
            return "unreadable (%s)" % e
    finally:
        shutil.rmtree(tmp)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The source database, a backup of it, a file replica of it (made by
    `litesafe replicate`), and the foreign siblings to plant."""
    top = tmp_path_factory.mktemp("world")
    w = type("World", (), {})()
    # The source: 100 rows, the last ones in its WAL.
    w.src = top / "src" / "app.db"
    w.src.parent.mkdir()
    make_db(w.src, rows=90, blob=120, checkpoint=True).close()
    leave_wal(w.src, rows=10, blob=120)
    w.src_digest = digest(w.src)

    # A backup file.
    w.backup = top / "bk" / "app-backup.db"
    w.backup.parent.mkdir()
    r = run("backup", w.src, w.backup)
    assert r.rc == 0, r

    # A file replica, with WAL segments after the snapshot.
    w.replica = top / "replica"
    rep = replicator(top, w.src, file_url(w.replica), level="info")
    try:
        rep.wait_log(r"snapshot written", timeout=60)
        db = sqlite3.connect(str(w.src), isolation_level=None)
        db.execute("PRAGMA wal_autocheckpoint=0")
        for _ in range(3):
            db.execute("INSERT INTO t(v) VALUES(randomblob(120))")
        db.close()
        w.src_digest = digest(w.src)
        probe_dir = top / "probes"
        probe_dir.mkdir()
        wait_replicated(probe_dir, file_url(w.replica), w.src_digest)
    finally:
        assert rep.stop() == 0, rep.tail()
    w.src_rows = count(w.src)

    # Foreign siblings: another WAL database, its whole content in its WAL...
    w.stranger = top / "stranger" / "other.db"
    w.stranger.parent.mkdir()
    leave_wal(w.stranger, rows=STRANGER_ROWS, blob=40)
    assert os.path.getsize(str(w.stranger) + "-wal") > 0
    assert os.path.getsize(str(w.stranger) + "-shm") > 0
    # ... and a rollback-mode database whose writer died mid-transaction.
    w.stranger_rb = top / "stranger" / "rollback.db"
    make_db(w.stranger_rb, rows=40, wal=False, blob=3000).close()
    leave_hot_journal(w.stranger_rb)
    w.foreign = {"-wal": str(w.stranger) + "-wal", "-shm": str(w.stranger) + "-shm",
                 "-journal": str(w.stranger_rb) + "-journal"}
    return w


def plant(w, db, suffix):
    """Copy the foreign sibling `suffix` next to db; returns its path."""
    p = str(db) + suffix
    shutil.copyfile(w.foreign[suffix], p)
    return p


def assert_refused(r, out, sibling, before, d, what):
    """The command refused because of `sibling` and left d exactly as it was."""
    if r.rc == 0 and os.path.exists(str(out)):
        pytest.fail("%s published %s next to %s; it opens with %s rows"
                    % (what, out, sibling, rows_as_opened(out)))
    assert r.rc == 1, r
    assert "%s exists" % sibling in r.err, r.err
    assert "would replay it" in r.err, r.err
    assert r.err.count("\n") == 1, r.err     # one line: the error
    assert not os.path.exists(str(out))
    assert dir_state(d) == before            # sibling untouched, no temp file


# ---------------------------------------------------------------------------
# The hazard is real


def test_planted_wal_really_replays(world, tmp_path):
    """Without a refusal, a copy of the source published next to the planted
    -wal opens as the stranger's database."""
    victim = tmp_path / "victim.db"
    shutil.copyfile(world.backup, victim)
    assert count(victim) == world.src_rows - 3
    plant(world, victim, "-wal")
    assert count(victim) == STRANGER_ROWS


# ---------------------------------------------------------------------------
# Every command, every sibling: refused at the start


def _restore_replica(w, out):
    return ["restore", "-o", out, file_url(w.replica)]


def _restore_file(w, out):
    return ["restore", w.backup, "-o", out]


def _restore_replace_missing(w, out):
    return ["restore", w.backup, "--replace", out]


def _backup(w, out):
    return ["backup", w.src, out]


def _backup_compact(w, out):
    return ["backup", w.src, out, "--compact"]


COMMANDS = {
    "restore-replica": _restore_replica,
    "restore-file": _restore_file,
    "restore-replace-missing": _restore_replace_missing,
    "backup": _backup,
    "backup-compact": _backup_compact,
}


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_refused_next_to_a_foreign_sibling(world, tmp_path, cmd, suffix):
    d = tmp_path / "out"
    d.mkdir()
    out = d / "app.db"
    sibling = plant(world, out, suffix)
    before = dir_state(d)
    src_before = dir_state(world.src.parent)
    r = run(*COMMANDS[cmd](world, out))
    assert_refused(r, out, sibling, before, d, cmd)
    assert dir_state(world.src.parent) == src_before


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_restore_to_the_configured_database_path(world, tmp_path, suffix):
    """`restore -config CFG DB`: the database was lost but a -wal/-shm/-journal
    stayed behind at its path; the restore must not put a file next to it."""
    d = tmp_path / "data"
    d.mkdir()
    db = d / "app.db"
    cfg = write_config(tmp_path / "litesafe.yml", db, world.replica)
    sibling = plant(world, db, suffix)
    before = dir_state(d)
    r = run("restore", "-config", cfg, db)
    assert_refused(r, db, sibling, before, d, "restore -config")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_snapshot_refused_before_the_checkpoint(world, tmp_path, suffix):
    """snapshot checks DEST's siblings before it checkpoints the source."""
    src = tmp_path / "src" / "live.db"
    src.parent.mkdir()
    make_db(src, rows=30, checkpoint=True).close()
    leave_wal(src, rows=5)
    assert os.path.getsize(str(src) + "-wal") > 0
    d = tmp_path / "out"
    d.mkdir()
    out = d / "snap.db"
    sibling = plant(world, out, suffix)
    before, src_before = dir_state(d), dir_state(src.parent)
    r = run("snapshot", src, out, "-m", "truncate")
    assert_refused(r, out, sibling, before, d, "snapshot")
    assert dir_state(src.parent) == src_before   # no checkpoint ran


def stamped_names(base, around=None):
    """The timestamped backup names `backup` may pick from 5 s ago to 2 min on."""
    now = int(time.time()) if around is None else around
    for t in range(now - 5, now + 120):
        stamp = datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
            "%Y%m%dT%H%M%SZ")
        yield "%s-%s.db" % (base, stamp)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("how", ["default-dir", "--dir", "--watch"])
def test_timestamped_backup_refused(world, tmp_path, how, suffix):
    """backup without DEST (default directory, --dir, --watch): the name is
    chosen by the clock, so a sibling is planted for every name it may pick."""
    src = tmp_path / "src" / "app.db"
    src.parent.mkdir()
    make_db(src, rows=20).close()
    d = src.parent / "backups" if how == "default-dir" else tmp_path / "bk"
    d.mkdir()
    for name in stamped_names("app"):
        plant(world, d / name, suffix)
    before = dir_state(d)
    args = {"default-dir": [], "--dir": ["--dir", d],
            "--watch": ["--dir", d, "--watch", "1s", "--keep", "2"]}[how]
    r = run("backup", src, *args, timeout=60)
    assert r.rc == 1, r
    assert re.search(re.escape(str(d)) + r"/app-\d{8}T\d{6}Z\.db" + re.escape(suffix)
                     + " exists", r.err), r.err
    assert "would replay it" in r.err, r.err
    assert dir_state(d) == before


# ---------------------------------------------------------------------------
# A sibling that appears while the command runs


def test_sibling_appearing_during_a_backup(world, tmp_path):
    """The check before the final rename: the backup passes its first checks
    and creates its temp file, then waits for the source's lock, which this
    test holds until it has planted a foreign -wal next to DEST."""
    src = tmp_path / "src" / "rb.db"
    src.parent.mkdir()
    make_db(src, rows=50, wal=False).close()
    holder = sqlite3.connect(str(src), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")    # keeps every reader out
    d = tmp_path / "out"
    d.mkdir()
    out = d / "copy.db"
    p = subprocess.Popen([BIN, "backup", str(src), str(out),
                          "--busy-timeout", "600000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not [n for n in os.listdir(str(d)) if n.endswith(".litesafe-tmp")]:
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "the backup never created its temp file"
            time.sleep(0.01)
        sibling = plant(world, out, "-wal")
        before = dir_state(d)
        before.pop([n for n in before if n.endswith(".litesafe-tmp")][0])
        holder.execute("ROLLBACK")
        so, se = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        holder.close()
    assert p.returncode == 1, (so, se)
    assert "%s exists" % sibling in se and "would replay it" in se, se
    assert not os.path.exists(str(out))
    assert dir_state(d) == before        # the temp file is gone too


# ---------------------------------------------------------------------------
# --replace of an existing database: its own siblings go with it


def test_replace_takes_the_old_databases_siblings_along(world, tmp_path):
    """An existing WAL database with its -wal and -shm: they are the old
    database's, kept as DB.pre-restore-wal / removed, and the restored file
    opens as the backup, not replayed with the old WAL."""
    d = tmp_path / "data"
    d.mkdir()
    db = d / "app.db"
    make_db(db, rows=30).close()
    leave_wal(db, rows=4)
    assert os.path.exists(str(db) + "-wal") and os.path.exists(str(db) + "-shm")
    r = run("restore", world.backup, "--replace", db)
    assert r.rc == 0, r
    assert sorted(os.listdir(str(d))) == ["app.db", "app.db.pre-restore",
                                          "app.db.pre-restore-wal"]
    assert sha256(db) == sha256(world.backup)
    assert count(db) == world.src_rows - 3
    assert count(str(db) + ".pre-restore") == 34


def test_replace_moves_a_hot_journal_aside_not_into_the_restored_file(world, tmp_path):
    """A rollback-mode database whose writer died mid-transaction: the hot
    journal is the old database's; it goes to DB.pre-restore-journal and is
    never rolled back into the restored file."""
    d = tmp_path / "data"
    d.mkdir()
    db = d / "app.db"
    shutil.copyfile(world.stranger_rb, db)
    shutil.copyfile(world.foreign["-journal"], str(db) + "-journal")
    r = run("restore", world.backup, "--replace", db)
    assert r.rc == 0, r
    assert sorted(os.listdir(str(d))) == ["app.db", "app.db.pre-restore",
                                          "app.db.pre-restore-journal"]
    assert sha256(db) == sha256(world.backup)
    assert count(db) == world.src_rows - 3 and integrity(db) == "ok"
    assert count(str(db) + ".pre-restore") == 40     # the journal rolled back there


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_replace_refused_next_to_a_stale_pre_restore_sibling(world, tmp_path, suffix):
    """DB.pre-restore is published too: a stale DB.pre-restore-wal/-shm/-journal
    is refused before anything moves."""
    d = tmp_path / "data"
    d.mkdir()
    db = d / "app.db"
    make_db(db, rows=30, checkpoint=True).close()
    sibling = plant(world, str(db) + ".pre-restore", suffix)
    before = dir_state(d)
    r = run("restore", world.backup, "--replace", db)
    assert r.rc == 1, r
    assert sibling in r.err, r.err
    assert dir_state(d) == before


# ---------------------------------------------------------------------------
# validate restores into a private temp directory


def test_validate_restores_in_a_private_directory_and_leaves_nothing(world):
    """validate's restored copy lives in a 0700 temp directory next to the
    database (no one else can put a sibling beside it); afterwards the
    database's directory is as it was."""
    d = world.src.parent
    before = sorted(n for n in os.listdir(str(d)) if "litesafe-" in n and not n.endswith(
        "-litesafe"))
    r = run("validate", world.src, file_url(world.replica), "--json")
    assert r.rc == 0, r
    assert r.json["ok"] is True, r.json
    after = sorted(n for n in os.listdir(str(d)) if "litesafe-" in n and not n.endswith(
        "-litesafe"))
    assert before == after == [], after
