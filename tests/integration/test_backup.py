"""`litesafe backup DB [DEST]` (alias `bk`): a consistent online copy of a live
database, published atomically, with the source's permission bits and the
SHA-256 of what was written.

What these tests prove, against the real binary on real databases:
- consistency while another process writes (and checkpoints, and closes its
  connection): every backup passes integrity_check and an invariant that a torn
  snapshot would break (sum of rows == running total kept in another table);
- the bytes: a backup of a quiescent database equals that database checkpointed,
  its sha256/size/page_count in the result describe the file;
- refusals leave everything as it was (existing DEST, missing directory,
  read-only directory, missing source, not a database, empty file);
- publication: a full disk or a kill -9 at any moment leaves no DEST or a complete
  one, and no temp file survives the next run;
- permissions, timestamped names, --compact, --watch with retention.

Run alone: LITESAFE_BIN=build/litesafe /usr/bin/python3 -m pytest -q tests/integration/test_backup.py
"""
import contextlib
import datetime
import json
import os
import queue
import random
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time

import pytest

from conftest import BIN, run, make_db, leave_wal, integrity, dump, sha256, count

TMP_SUFFIX = ".litesafe-tmp"
STAMP_RE = re.compile(r"^(?P<name>.+)-(?P<stamp>\d{8}T\d{6}Z)\.db$")


# ---------------------------------------------------------------- helpers

def backup(*args, **kw):
    """`litesafe backup ARGS --json`; returns the Result."""
    return run("backup", *args, "--json", **kw)


def strays(d):
    """Names in directory d that are temp files of litesafe (or their SQLite
    side files such as a VACUUM INTO journal)."""
    return sorted(n for n in os.listdir(d) if TMP_SUFFIX in n)


def check_result(j, dest):
    """The result describes DEST: size, sha256 (lowercase hex of the file's
    bytes, as sha256sum prints it), page_count * page_size == size."""
    dest = str(dest)
    assert j["command"] == "backup"
    assert j["destination"] == os.path.abspath(dest)
    assert os.path.isabs(j["source"])
    size = os.path.getsize(dest)
    assert j["size_bytes"] == size
    assert re.fullmatch(r"[0-9a-f]{64}", j["sha256"]), j["sha256"]
    assert j["sha256"] == sha256(dest)
    assert j["page_count"] * j["page_size"] == size
    assert isinstance(j["elapsed_ms"], int) and j["elapsed_ms"] >= 0
    assert isinstance(j["retries"], int) and 0 <= j["retries"] < 100


def header(path):
    with open(path, "rb") as f:
        return f.read(100)


def freelist_count(path):
    db = sqlite3.connect(str(path))
    try:
        return db.execute("PRAGMA freelist_count").fetchone()[0]
    finally:
        db.close()


def ledger_state(path):
    """(integrity, invariant holds, seq) of a ledger database (see WRITER)."""
    db = sqlite3.connect(str(path))
    try:
        ic = db.execute("PRAGMA integrity_check").fetchone()[0]
        s, c = db.execute("SELECT coalesce(sum(n), 0), count(*) FROM items").fetchone()
        ts, tc, seq = db.execute("SELECT s, c, seq FROM total").fetchone()
        return ic, (s == ts and c == tc), seq, (s, ts, c, tc)
    finally:
        db.close()


def make_ledger(path, items, pad, wal=True):
    """items(id, n, pad) and total(s, c, seq) with sum(n) == s and count == c."""
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=%s" % ("wal" if wal else "delete"))
    db.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, n INTEGER, pad BLOB)")
    db.execute("CREATE TABLE total(id INTEGER PRIMARY KEY, s INTEGER, c INTEGER, seq INTEGER)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO items(n, pad) VALUES(?, randomblob(?))",
                   ((1000, pad) for _ in range(items)))
    db.execute("INSERT INTO total VALUES(1, ?, ?, 0)", (1000 * items, items))
    db.execute("COMMIT")
    db.close()


# A writer in its own process, one connection (see DESIGN.md 5 on SQLite's
# WAL-reset bug), committing small transactions until the stop file appears.
#   ledger: insert an item and add it to the total; 20% also delete an item.
#   ckpt:   ledger, plus PRAGMA wal_checkpoint(PASSIVE|TRUNCATE|RESTART) every
#           25 commits: the WAL restarts again and again under the backups.
#   bank:   move amounts between existing items (sum and page count constant),
#           closing and reopening the connection every 50 commits: each close
#           of the last connection checkpoints and deletes the WAL.
#   longtx: insert + total in transactions that each hold the write lock for
#           5 ms, back to back (a bulk loader).
WRITER = r'''
import json, os, random, sqlite3, sys, time
mode, path, ready, stop, seed = sys.argv[1:6]
rnd = random.Random(int(seed))
deadline = time.monotonic() + 300   # never outlive a broken test
def connect():
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    db.execute("PRAGMA synchronous=NORMAL")
    return db
db = connect()
maxid, nitems = db.execute("SELECT max(id), count(*) FROM items").fetchone()
open(ready, "w").close()
n = 0
ckmodes = ["PASSIVE", "TRUNCATE", "RESTART"]
busy = {m: 0 for m in ckmodes}
while mode == "longtx" and time.monotonic() < deadline:
    # as little as possible between COMMIT and the next BEGIN IMMEDIATE
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO items(n, pad) VALUES(1, randomblob(100))")
    db.execute("UPDATE total SET s=s+1, c=c+1, seq=seq+1")
    n += 1
    if n % 20 == 0 and os.path.exists(stop):
        db.execute("COMMIT")
        break
    time.sleep(0.005)
    db.execute("COMMIT")
while mode != "longtx" and not os.path.exists(stop) and time.monotonic() < deadline:
    if mode == "bank":
        a, b, x = rnd.randrange(1, nitems + 1), rnd.randrange(1, nitems + 1), rnd.randrange(1, 100)
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE items SET n=n-?, pad=randomblob(length(pad)) WHERE id=?", (x, a))
        db.execute("UPDATE items SET n=n+?, pad=randomblob(length(pad)) WHERE id=?", (x, b))
        db.execute("UPDATE total SET seq=seq+1")
        db.execute("COMMIT")
    else:
        v = rnd.randrange(1000)
        db.execute("BEGIN IMMEDIATE")
        cur = db.execute("INSERT INTO items(n, pad) VALUES(?, randomblob(?))",
                         (v, rnd.randrange(50, 1500)))
        maxid = cur.lastrowid
        db.execute("UPDATE total SET s=s+?, c=c+1, seq=seq+1", (v,))
        if rnd.random() < 0.2:
            row = db.execute("SELECT id, n FROM items WHERE id >= ? ORDER BY id LIMIT 1",
                             (rnd.randrange(1, maxid + 1),)).fetchone()
            if row:
                db.execute("DELETE FROM items WHERE id=?", (row[0],))
                db.execute("UPDATE total SET s=s-?, c=c-1", (row[1],))
        db.execute("COMMIT")
    n += 1
    if mode == "ckpt" and n % 25 == 0:
        m = ckmodes[(n // 25) % 3]
        if db.execute("PRAGMA wal_checkpoint(%s)" % m).fetchone()[0]:
            busy[m] += 1
    if mode == "bank" and n % 50 == 0:
        db.close()
        db = connect()
db.close()
print(json.dumps({"commits": n, "busy_checkpoints": busy}))
'''


class Writer:
    """Context manager running WRITER in another process."""

    def __init__(self, mode, path, tmp, seed=1):
        self.ready = os.path.join(str(tmp), "writer.%s.ready" % mode)
        self.stopf = os.path.join(str(tmp), "writer.%s.stop" % mode)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, mode, str(path), self.ready, self.stopf, str(seed)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.result = None

    def __enter__(self):
        for _ in range(6000):
            if os.path.exists(self.ready):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        self._kill()
        raise AssertionError("writer did not start: %s" % self.proc.stderr.read())

    def stop(self):
        if self.result is None:
            open(self.stopf, "w").close()
            out, err = self.proc.communicate(timeout=120)
            assert self.proc.returncode == 0, err
            self.result = json.loads(out.strip().splitlines()[-1])
        return self.result

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __exit__(self, *exc):
        if exc[0] is None:
            self.stop()
        self._kill()


@contextlib.contextmanager
def tmpfs(path, options):
    """Mount a tmpfs at path (root only); skip the test when that is impossible."""
    os.makedirs(str(path), exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs (needs root): %s" % p.stderr.strip())
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", str(path)], check=True)


def wait_for(pred, timeout=60.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.002)
    raise AssertionError("timed out waiting for %s" % what)


class LineReader:
    """Collect a child's stdout lines in a thread (for --watch)."""

    def __init__(self, proc):
        self.q = queue.Queue()
        self.lines = []
        self.t = threading.Thread(target=self._run, args=(proc,), daemon=True)
        self.t.start()

    def _run(self, proc):
        for line in proc.stdout:
            if line.strip():
                self.q.put(line)

    def wait_lines(self, n, proc, timeout=60.0):
        end = time.monotonic() + timeout
        while len(self.lines) < n and time.monotonic() < end:
            try:
                self.lines.append(self.q.get(timeout=0.1))
            except queue.Empty:
                if proc.poll() is not None and self.q.empty():
                    break
        return len(self.lines) >= n

    def drain(self):
        self.t.join(timeout=30)
        while not self.q.empty():
            self.lines.append(self.q.get())
        return [json.loads(l) for l in self.lines]


@pytest.fixture(scope="module")
def bigdb(tmp_path_factory):
    """A quiescent ~80 MB WAL database (about 15 MB of it still in the -wal)
    and a reference backup of it: (path, reference sha256, seconds it took)."""
    d = tmp_path_factory.mktemp("big")
    src = d / "big.db"
    db = make_db(src, rows=60000, blob=1000, checkpoint=True)
    db.close()
    leave_wal(src, rows=15000, blob=1000)
    assert os.path.getsize(str(src) + "-wal") > 10 << 20
    ref = d / "ref.db"
    t0 = time.monotonic()
    r = backup(src, ref)
    took = time.monotonic() - t0
    assert r.rc == 0, r
    check_result(r.json, ref)
    assert integrity(ref) == "ok"
    assert count(ref) == 75000
    return src, r.json["sha256"], took


# ---------------------------------------------------------------- consistency

@pytest.mark.parametrize("mode,wal", [("ledger", True), ("ckpt", True), ("ledger", False)],
                         ids=["wal-writer", "wal-checkpointing-writer", "rollback-writer"])
def test_consistent_under_concurrent_writer(tmp_path, mode, wal):
    """Backups taken while another process commits small transactions (and, in
    the checkpointing variant, runs PASSIVE/TRUNCATE/RESTART checkpoints so the
    WAL restarts during the copies) are each a committed state: integrity_check
    passes and sum(items) equals the running total kept in another table, which
    a copy mixing two states would break. The commit counter never goes back
    from one backup to the next, and did advance while the backups ran. A
    --compact backup taken under the same writer holds too. The source itself
    stays intact."""
    src = tmp_path / "src.db"
    make_ledger(src, items=25000 if wal else 8000, pad=800)
    seqs, retries = [], []
    with Writer(mode, src, tmp_path, seed=7) as w:
        for i in range(7 if wal else 4):
            dest = tmp_path / ("b%d.db" % i)
            args = [src, dest] + (["--compact"] if i == 3 else [])
            r = backup(*args, timeout=300)
            assert r.rc == 0, r
            check_result(r.json, dest)
            retries.append(r.json["retries"])
            ic, ok, seq, detail = ledger_state(dest)
            assert ic == "ok", "backup %d: %s" % (i, ic)
            assert ok, "backup %d is a torn snapshot: sum/total/count/c = %r" % (i, detail)
            if i == 3:
                assert freelist_count(dest) == 0
            seqs.append(seq)
        res = w.stop()
    assert seqs == sorted(seqs), seqs
    assert seqs[-1] > seqs[0], "the writer made no progress during the backups: %r" % seqs
    assert res["commits"] > 0
    ic, ok, _, detail = ledger_state(src)
    assert ic == "ok" and ok, (ic, detail)
    print("writer %r, seqs %r, retries %r" % (res, seqs, retries))


def test_consistent_when_app_closes_its_connection(tmp_path):
    """The application closes and reopens its connection every 50 commits (each
    close of the last connection checkpoints and deletes the -wal, the next
    write creates a new one) while transfers between rows keep the sum and the
    page count constant. Every backup must still be a committed state; up to
    60 backups are taken (a torn one usually shows within a few)."""
    src = tmp_path / "src.db"
    make_ledger(src, items=3000, pad=1000)
    bad = []
    with Writer("bank", src, tmp_path, seed=3):
        for i in range(60):
            dest = tmp_path / "b.db"
            r = backup(src, dest, timeout=300)
            assert r.rc == 0, r
            check_result(r.json, dest)
            ic, ok, seq, detail = ledger_state(dest)
            if ic != "ok" or not ok:
                bad.append((i, ic, detail, r.json["wal_frames"]))
                break
            os.unlink(str(dest))
    assert not bad, "torn backup: %r" % bad
    ic, ok, _, detail = ledger_state(src)
    assert ic == "ok" and ok, (ic, detail)


def test_completes_while_writer_holds_the_lock_back_to_back(tmp_path):
    """A writer whose transactions each hold the write lock for 5 ms, back to
    back, must not starve the backup: it completes (with a consistent copy)
    within its own --busy-timeout budget."""
    src = tmp_path / "src.db"
    make_ledger(src, items=3000, pad=500)
    with Writer("longtx", src, tmp_path):
        time.sleep(0.2)
        r = backup(src, tmp_path / "b.db", "--busy-timeout", "1000", timeout=300)
    assert r.rc == 0, r
    check_result(r.json, tmp_path / "b.db")
    ic, ok, _, detail = ledger_state(tmp_path / "b.db")
    assert ic == "ok" and ok, (ic, detail)


# ---------------------------------------------------------------- contents

def test_quiescent_wal_backup_equals_checkpointed_source(tmp_path):
    """With committed frames still in the -wal (free pages too), the backup is
    byte for byte the database a full checkpoint of a copy would produce, its
    dump equals the source's, and the source's -wal is left exactly as it was
    (litesafe never checkpoints or deletes it). Nothing but DEST appears in the
    destination directory."""
    src = tmp_path / "src.db"
    db = make_db(src, rows=3000, blob=300, checkpoint=True)
    db.execute("DELETE FROM t WHERE id % 3 = 0")
    db.close()
    leave_wal(src, rows=2000, blob=200)
    wal = str(src) + "-wal"
    wal_sha, db_sha = sha256(wal), sha256(src)
    assert os.path.getsize(wal) > 0
    out = tmp_path / "out"
    out.mkdir()
    r = backup(src, out / "b.db")
    assert r.rc == 0, r
    j = r.json
    check_result(j, out / "b.db")
    assert j["wal_frames"] > 0
    assert os.listdir(str(out)) == ["b.db"]
    # sha256sum agrees, literally
    p = subprocess.run(["sha256sum", str(out / "b.db")], capture_output=True, text=True)
    assert p.stdout.split()[0] == j["sha256"]
    # the source is untouched
    assert sha256(wal) == wal_sha and sha256(src) == db_sha
    # reference: copy the quiescent files, checkpoint the copy
    ref = tmp_path / "ref"
    ref.mkdir()
    shutil.copy(str(src), str(ref / "src.db"))
    shutil.copy(wal, str(ref / "src.db-wal"))
    c = sqlite3.connect(str(ref / "src.db"))
    assert c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    c.close()
    assert sha256(ref / "src.db") == j["sha256"]
    assert dump(out / "b.db") == dump(src)
    assert integrity(out / "b.db") == "ok"


def test_rollback_journal_database(tmp_path):
    """A rollback-journal database is backed up too: same dump, still a
    rollback-journal file, and nothing is created next to the source."""
    src = tmp_path / "src" / "db.sqlite"
    src.parent.mkdir()
    db = make_db(src, rows=2000, wal=False)
    db.close()
    before = sorted(os.listdir(str(src.parent)))
    r = run("bk", src, tmp_path / "b.db", "--json")    # the alias
    assert r.rc == 0, r
    check_result(r.json, tmp_path / "b.db")
    assert r.json["wal_frames"] == 0
    assert header(tmp_path / "b.db")[18:20] == b"\x01\x01"
    assert dump(tmp_path / "b.db") == dump(src)
    assert sorted(os.listdir(str(src.parent))) == before


def test_json_before_and_after_subcommand_and_text_output(tmp_path):
    """--json works before and after the subcommand (and as -json); without it
    the result is printed as text with the same facts."""
    src = tmp_path / "a.db"
    make_db(src, rows=50).close()
    r1 = run("--json", "backup", src, tmp_path / "1.db")
    r2 = run("backup", src, tmp_path / "2.db", "--json")
    r3 = run("backup", "-json", src, tmp_path / "3.db")
    for r, n in ((r1, "1.db"), (r2, "2.db"), (r3, "3.db")):
        assert r.rc == 0, r
        check_result(r.json, tmp_path / n)
    assert r1.json["sha256"] == r2.json["sha256"] == r3.json["sha256"]
    r = run("backup", src, tmp_path / "4.db")
    assert r.rc == 0, r
    assert r1.json["sha256"] in r.out and str(tmp_path / "4.db") in r.out
    with pytest.raises(ValueError):
        json.loads(r.out)


# ---------------------------------------------------------------- refusals

def test_existing_dest_is_refused_and_untouched(tmp_path):
    """An existing DEST (a file, a directory, a dangling symlink) is refused
    with exit 1 and stays exactly as it was: content, inode, mtime; a symlink's
    target is not created. No temp file is left behind."""
    src = tmp_path / "a.db"
    make_db(src, rows=50).close()
    dest = tmp_path / "dest.db"
    dest.write_bytes(b"precious")
    os.utime(str(dest), (1000000000, 1000000000))
    st = os.stat(str(dest))
    r = backup(src, dest)
    assert r.rc == 1, r
    assert "exist" in r.err
    j = r.json
    assert j["command"] == "backup" and j["code"] == "EEXIST" and j["error"]
    st2 = os.stat(str(dest))
    assert dest.read_bytes() == b"precious"
    assert (st2.st_ino, st2.st_mtime_ns, st2.st_size) == (st.st_ino, st.st_mtime_ns, st.st_size)
    # a directory
    (tmp_path / "dir.db").mkdir()
    r = backup(src, tmp_path / "dir.db")
    assert r.rc == 1, r
    assert os.listdir(str(tmp_path / "dir.db")) == []
    # a dangling symlink: refused, not followed
    os.symlink(str(tmp_path / "target.db"), str(tmp_path / "link.db"))
    r = backup(src, tmp_path / "link.db")
    assert r.rc == 1, r
    assert not os.path.exists(str(tmp_path / "target.db"))
    # the source as its own destination
    r = backup(src, src)
    assert r.rc in (1, 2), r
    assert integrity(src) == "ok"
    assert strays(tmp_path) == []


def test_missing_dest_directory(tmp_path):
    """A DEST in a directory that does not exist: exit 1, nothing created."""
    src = tmp_path / "a.db"
    make_db(src, rows=10).close()
    r = backup(src, tmp_path / "nope" / "b.db")
    assert r.rc == 1, r
    assert "nope" in r.err
    assert not os.path.exists(str(tmp_path / "nope"))


def test_readonly_dest_directory(tmp_path):
    """A destination directory on a read-only file system (root bypasses mode
    bits, a read-only mount does not): exit 1, a clear message, nothing
    written; same for --dir below it."""
    src = tmp_path / "a.db"
    make_db(src, rows=10).close()
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        r = backup(src, os.path.join(ro, "b.db"))
        assert r.rc == 1, r
        assert "Read-only file system" in r.err
        r = backup(src, "--dir", os.path.join(ro, "sub"))
        assert r.rc == 1, r
        assert os.listdir(ro) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses directory permissions "
                    "(the read-only mount test covers this case)")
def test_unwritable_dest_directory_by_mode(tmp_path):
    """A 0555 destination directory (non-root only): exit 1, nothing written."""
    src = tmp_path / "a.db"
    make_db(src, rows=10).close()
    d = tmp_path / "locked"
    d.mkdir()
    os.chmod(str(d), 0o555)
    try:
        r = backup(src, d / "b.db")
        assert r.rc == 1, r
        assert os.listdir(str(d)) == []
    finally:
        os.chmod(str(d), 0o755)


def test_missing_source_is_not_created(tmp_path):
    """A missing source: exit 1, and neither it nor a -wal/-shm/-journal nor
    DEST is created (SQLite's open would create an empty database)."""
    r = backup(tmp_path / "none.db", tmp_path / "b.db")
    assert r.rc == 1, r
    assert "none.db" in r.err
    assert os.listdir(str(tmp_path)) == []


def test_refused_timestamped_backup_creates_nothing(tmp_path):
    """A timestamped backup (no DEST) of a missing source or of a file that is
    not a database: exit 1, and no backups/ directory appears."""
    (tmp_path / "x.db").write_bytes(b"not a database at all" * 10)
    for name in ("none.db", "x.db"):
        r = backup(tmp_path / name)
        assert r.rc == 1, r
    assert sorted(os.listdir(str(tmp_path))) == ["x.db"]


@pytest.mark.parametrize("content", [b"", b"hello, this is not a database\n" * 10,
                                     b"SQLite format 3\x00" + b"\xff" * 84],
                         ids=["empty", "text", "bad-header"])
def test_not_a_database(tmp_path, content):
    """An empty file, a text file, a file with SQLite's magic but a nonsense
    header: exit 1, the file stays byte for byte as it was (an empty file stays
    empty: SQLite would happily turn it into a database), nothing is created."""
    src = tmp_path / "x.db"
    src.write_bytes(content)
    r = backup(src, tmp_path / "b.db")
    assert r.rc == 1, r
    assert r.json["code"] in ("ENOTDB", "ECORRUPT"), r
    assert src.read_bytes() == content
    assert os.listdir(str(tmp_path)) == ["x.db"]


def test_source_is_a_directory(tmp_path):
    """A directory as the source: exit 1."""
    r = backup(tmp_path, tmp_path / "b.db")
    assert r.rc == 1, r
    assert not os.path.exists(str(tmp_path / "b.db"))


@pytest.mark.parametrize("args", [
    ["DEST", "--bogus"], ["DEST", "--keep", "2"], ["--dir", "D", "--watch", "nonsense"],
    ["--dir", "D", "--watch", "0s"], ["--dir", "D", "--watch", "1s", "--keep-within", "forever"],
    ["--dir", "D", "--watch", "1s", "--keep", "0"], ["DEST", "--dir", "D"],
    ["DEST", "--watch", "1s"], ["DEST", "EXTRA"],
], ids=["unknown-option", "keep-without-watch", "bad-interval", "zero-interval",
        "bad-duration", "keep-zero", "dest-and-dir", "dest-and-watch", "extra-argument"])
def test_usage_errors(tmp_path, args):
    """Usage errors exit 2, write nothing, and say what is wrong (also as JSON)."""
    src = tmp_path / "a.db"
    make_db(src, rows=10).close()
    sub = {"DEST": str(tmp_path / "b.db"), "D": str(tmp_path / "d"),
           "EXTRA": str(tmp_path / "c.db")}
    args = [sub.get(a, a) for a in args]
    r = run("backup", src, *args, "--json", timeout=30)
    assert r.rc == 2, r
    assert r.err.startswith("litesafe:"), r.err
    assert r.json["code"] == "EUSAGE" and r.json["command"] == "backup"
    assert sorted(os.listdir(str(tmp_path))) == ["a.db"]
    r = run("backup")
    assert r.rc == 2, r


# ---------------------------------------------------------------- permissions, names

@pytest.mark.parametrize("mode,umask", [(0o600, 0o000), (0o640, 0o077), (0o644, 0o077),
                                        (0o600, 0o022)])
@pytest.mark.parametrize("compact", [False, True], ids=["copy", "compact"])
def test_dest_gets_source_permission_bits(tmp_path, mode, umask, compact):
    """DEST has the source's permission bits whatever the umask, for a copy and
    for --compact, explicit DEST and timestamped name alike."""
    src = tmp_path / "a.db"
    make_db(src, rows=100).close()
    os.chmod(str(src), mode)
    old = os.umask(umask)
    try:
        extra = ["--compact"] if compact else []
        r1 = backup(src, tmp_path / "b.db", *extra)
        r2 = backup(src, "--dir", tmp_path / "bk", *extra)
    finally:
        os.umask(old)
    assert r1.rc == 0, r1
    assert r2.rc == 0, r2
    for j in (r1.json, r2.json):
        assert stat.S_IMODE(os.stat(j["destination"]).st_mode) == mode, oct(
            os.stat(j["destination"]).st_mode)


def test_temp_file_never_more_permissive_than_source(tmp_path, bigdb):
    """While a backup of a 0600 database runs, every file that appears in the
    destination directory (temp file, any side file) is 0600 the whole time, and
    any directory (--compact works in a private temp directory) 0700: another
    user must never be able to open a copy of the data. Sampled in a tight
    loop during a copy and during a --compact."""
    src, _, _ = bigdb
    own = tmp_path / "own.db"
    shutil.copy(str(src), str(own))
    shutil.copy(str(src) + "-wal", str(own) + "-wal")
    os.chmod(str(own), 0o600)
    seen = {}
    for extra in ([], ["--compact"]):
        out = tmp_path / ("out%d" % len(extra))
        out.mkdir()
        p = subprocess.Popen([BIN, "-q", "backup", str(own), str(out / "b.db")] + extra,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while p.poll() is None:
            for e in os.scandir(str(out)):
                try:
                    m = e.stat().st_mode
                    seen.setdefault(e.name, set()).add((stat.S_ISDIR(m), stat.S_IMODE(m)))
                except FileNotFoundError:
                    pass
        assert p.returncode == 0, p.stderr.read()
    assert any(TMP_SUFFIX in n for n in seen), "never saw the temp file: %r" % seen
    private = {(False, 0o600), (True, 0o700)}
    loose = {n: sorted((d, oct(m)) for d, m in ms) for n, ms in seen.items() if ms - private}
    assert not loose, loose


def test_timestamped_name_in_dir_and_default_backups_dir(tmp_path):
    """Without DEST the backup is <name>-YYYYMMDDTHHMMSSZ.db (known extension
    stripped, UTC now) in --dir (created if missing), or in <db dir>/backups/.
    A --dir whose parent is missing is an error (exit 1)."""
    src = tmp_path / "app.sqlite3"
    make_db(src, rows=20).close()
    before = datetime.datetime.now(datetime.timezone.utc)
    r = backup(src)
    assert r.rc == 0, r
    dest = r.json["destination"]
    assert os.path.dirname(dest) == str(tmp_path / "backups")
    m = STAMP_RE.match(os.path.basename(dest))
    assert m and m.group("name") == "app", dest
    t = datetime.datetime.strptime(m.group("stamp"), "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc)
    # a UTC stamp: within minutes of now (a local-time stamp would be hours off, except in UTC)
    assert abs((t - before).total_seconds()) < 600
    check_result(r.json, dest)
    assert dump(dest) == dump(src)

    r = run("backup", src, "--dir", tmp_path / "elsewhere", "--json")
    assert r.rc == 0, r
    dest = r.json["destination"]
    assert os.path.dirname(dest) == str(tmp_path / "elsewhere")
    assert STAMP_RE.match(os.path.basename(dest)).group("name") == "app"
    check_result(r.json, dest)

    r = backup(src, "--dir", tmp_path / "missing" / "sub")
    assert r.rc == 1, r
    assert not os.path.exists(str(tmp_path / "missing"))


def test_compact_drops_free_pages(tmp_path):
    """After deleting most rows the source has many free pages; --compact
    writes a copy without any (freelist_count 0, smaller) with the same dump,
    while a plain backup keeps the page image (same freelist count)."""
    src = tmp_path / "a.db"
    db = make_db(src, rows=5000, blob=500, checkpoint=True)
    db.execute("DELETE FROM t WHERE id % 5 != 0")
    db.close()
    leave_wal(src, rows=10)
    free = freelist_count(src)
    assert free > 100
    r1 = backup(src, tmp_path / "plain.db")
    r2 = backup(src, tmp_path / "compact.db", "--compact")
    assert r1.rc == 0 and r2.rc == 0, (r1, r2)
    check_result(r1.json, tmp_path / "plain.db")
    check_result(r2.json, tmp_path / "compact.db")
    assert r2.json["compact"] is True and r1.json["compact"] is False
    assert freelist_count(tmp_path / "plain.db") == free
    assert freelist_count(tmp_path / "compact.db") == 0
    assert r2.json["size_bytes"] < r1.json["size_bytes"]
    assert integrity(tmp_path / "compact.db") == "ok"
    assert dump(tmp_path / "compact.db") == dump(src) == dump(tmp_path / "plain.db")
    assert strays(tmp_path) == []


# ---------------------------------------------------------------- failures mid-way

@pytest.mark.parametrize("how", ["dest", "dir"])
def test_disk_full(tmp_path, how):
    """Backing up a 5 MB database onto a 2 MB file system: exit 1, a clean
    "No space left on device" message (code ENOSPC), and nothing left in the
    directory: no DEST, no temp file."""
    src = tmp_path / "a.db"
    make_db(src, rows=5000, blob=1000).close()
    assert os.path.getsize(str(src)) > 4 << 20
    with tmpfs(tmp_path / "small", "size=2m") as d:
        args = [os.path.join(d, "b.db")] if how == "dest" else ["--dir", d]
        r = backup(src, *args)
        assert r.rc == 1, r
        assert "No space left on device" in r.err, r.err
        assert r.json["code"] == "ENOSPC"
        assert os.listdir(d) == []
        # and the next backup that fits works in the same place
        small = tmp_path / "s.db"
        make_db(small, rows=10).close()
        r = backup(small, os.path.join(d, "s.db"))
        assert r.rc == 0, r
        assert os.listdir(d) == ["s.db"]


def test_disk_full_compact(tmp_path):
    """--compact onto a file system too small: exit 1 with a disk-full message
    and nothing at all left in the directory (no temp, no journal of it)."""
    src = tmp_path / "a.db"
    make_db(src, rows=5000, blob=1000).close()
    with tmpfs(tmp_path / "small", "size=2m") as d:
        r = backup(src, os.path.join(d, "b.db"), "--compact")
        assert r.rc == 1, r
        assert "No space left" in r.err or "disk is full" in r.err, r.err
        assert r.json["code"] == "ENOSPC"
        assert os.listdir(d) == []


def test_kill_9_at_random_moments(tmp_path, bigdb):
    """kill -9 of a backup of an ~80 MB database at random moments (and once
    exactly while its temp file exists): each time DEST is either absent or
    complete (the same bytes as a reference backup of the same quiescent
    source). Temp files of killed runs may remain until the next run into the
    same directory, which removes them. The source is never modified."""
    src, ref_sha, took = bigdb
    src_sha, wal_sha = sha256(src), sha256(str(src) + "-wal")
    d = tmp_path / "out"
    d.mkdir()
    dest = d / "b.db"
    rnd = random.Random(20240611)
    delays = [rnd.uniform(0, took * 1.3) for _ in range(7)] + [None]
    outcomes = []
    for delay in delays:
        p = subprocess.Popen([BIN, "-q", "backup", str(src), str(dest)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if delay is None:
            wait_for(lambda: strays(d) or p.poll() is not None, what="a temp file")
        else:
            time.sleep(delay)
        p.kill()
        p.wait()
        if os.path.exists(str(dest)):
            assert sha256(dest) == ref_sha, "a published DEST is incomplete (delay %r)" % delay
            os.unlink(str(dest))
            outcomes.append("complete")
        else:
            outcomes.append("absent")
    assert "absent" in outcomes, "no kill landed before publication: %r" % outcomes
    # the next run into the same directory cleans up after the dead ones
    r = backup(src, dest)
    assert r.rc == 0, r
    assert r.json["sha256"] == ref_sha
    assert strays(d) == []
    assert sorted(os.listdir(str(d))) == ["b.db"]
    assert sha256(src) == src_sha and sha256(str(src) + "-wal") == wal_sha
    print("outcomes:", outcomes)


def test_kill_9_timestamped_then_next_run_sweeps(tmp_path, bigdb):
    """A timestamped backup (no DEST) killed while its temp file exists: the
    next timestamped run into the same --dir (a later second, so another
    name) leaves no temp file behind."""
    src, ref_sha, _ = bigdb
    d = tmp_path / "bk"
    d.mkdir()
    p = subprocess.Popen([BIN, "-q", "backup", str(src), "--dir", str(d)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: strays(d) or p.poll() is not None, what="a temp file")
    p.kill()
    p.wait()
    assert strays(d), "the run finished before it could be killed"
    # a later second for the next name (time(2) may lag the precise clock by a tick)
    nxt = int(time.time()) + 1.1
    wait_for(lambda: time.time() > nxt, what="the next second")
    r = backup(src, "--dir", d)
    assert r.rc == 0, r
    assert r.json["sha256"] == ref_sha
    assert strays(d) == []


def test_sigterm_mid_copy_leaves_nothing(tmp_path, bigdb):
    """SIGTERM while a backup runs: either it finished (exit 0, DEST complete)
    or it stops with exit 1 and leaves neither DEST nor a temp file."""
    src, ref_sha, _ = bigdb
    d = tmp_path / "out"
    d.mkdir()
    p = subprocess.Popen([BIN, "-q", "backup", str(src), str(d / "b.db")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: strays(d) or p.poll() is not None, what="a temp file")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:
        assert sha256(d / "b.db") == ref_sha
    else:
        assert p.returncode == 1, err
        assert os.listdir(str(d)) == [], err
    assert strays(d) == []


# ---------------------------------------------------------------- --watch

def run_watch(args, lines, timeout=60):
    """Start `litesafe --json backup ... --watch ...`, wait for `lines` results
    (or its exit), SIGTERM it; returns (returncode, results, stderr)."""
    p = subprocess.Popen([BIN, "--json", "backup"] + [str(a) for a in args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader = LineReader(p)
    try:
        reader.wait_lines(lines, p, timeout=timeout)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return rc, reader.drain(), p.stderr.read()


def test_watch_takes_backups_until_sigterm(tmp_path):
    """--watch 1s takes a backup now and then every second (one result per
    backup, each matching its file) until SIGTERM, then exits 0."""
    src = tmp_path / "a.db"
    make_db(src, rows=500).close()
    d = tmp_path / "bk"
    rc, res, err = run_watch([src, "--dir", d, "--watch", "1s"], lines=3)
    assert rc == 0, err
    assert len(res) >= 3, (res, err)
    names = [j["destination"] for j in res]
    assert len(set(names)) == len(names)
    for j in res:
        check_result(j, j["destination"])
    assert sorted(os.listdir(str(d))) == sorted(os.path.basename(n) for n in names)


def test_watch_keep_prunes(tmp_path):
    """--watch 1s --keep 2: after 4 backups and SIGTERM, exit 0 and only the
    two newest backups remain, intact; the results report what was pruned."""
    r = run("prune", tmp_path, "--keep", "1")
    if "not implemented" in r.err:
        pytest.xfail("ls_prune is still a placeholder")
    src = tmp_path / "a.db"
    make_db(src, rows=500).close()
    d = tmp_path / "bk"
    rc, res, err = run_watch([src, "--dir", d, "--watch", "1s", "--keep", "2"], lines=4)
    assert rc == 0, err
    assert len(res) >= 4, (res, err)
    left = sorted(os.listdir(str(d)))
    newest = sorted(os.path.basename(j["destination"]) for j in res)[-2:]
    assert left == newest, (left, res)
    for j in res:
        assert "pruned" in j
        if os.path.exists(j["destination"]):
            check_result(j, j["destination"])
    assert sum(j["pruned"] for j in res) == len(res) - 2


def test_watch_subsecond_interval(tmp_path):
    """Backup names carry the time to the second, so --watch 200ms must either
    be refused up front (exit 2, nothing written) or work: keep taking backups
    (distinct files, each intact) until SIGTERM, exit 0. (Before d06855d it
    exited 1 with 'destination exists' at the second backup of a second.)"""
    src = tmp_path / "a.db"
    make_db(src, rows=100).close()
    d = tmp_path / "bk"
    rc, res, err = run_watch([src, "--dir", d, "--watch", "200ms"], lines=8)
    if rc == 2:
        assert not os.path.exists(str(d)) or os.listdir(str(d)) == []
        return
    assert rc == 0, (rc, err)
    ok = [j for j in res if "error" not in j]
    assert len(ok) >= 8, res
    assert len({j["destination"] for j in ok}) == len(ok)
    for j in ok:
        check_result(j, j["destination"])
