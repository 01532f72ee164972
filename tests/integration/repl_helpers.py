"""Helpers for the replication tests (test_replicate*.py, test_interop_litestream.py).

The workload: one table, append-only,

    log(seq INTEGER PRIMARY KEY, txn, ntx, payload BLOB, ck TEXT)

written by a separate writer process (this file run as a script, see
writer_main) with ONE connection and busy_timeout=5000. Every transaction
`txn` inserts `ntx` rows with consecutive `seq`; `ck` is a running SHA-256
over every payload so far (ck[n] = sha256(ck[n-1] + payload[n])). So:

  * a restore at any point must hold a contiguous prefix seq 1..N;
  * a partial (torn) transaction is visible: its rows' count differs from ntx;
  * the restored ck at seq N equals the source's ck at seq N only if every
    payload 1..N is byte-identical (check_log(..., ref=...)).

The writer appends one line per commit to a progress file:
    C <txn> <last seq> <t_begin> <t_committed>
and one per application checkpoint it runs (--checkpoint-every):
    K <mode> <busy> <wal pages> <checkpointed pages>   or   K <mode> locked <message>
It exits with status 3 if SQLite returns anything but busy/locked for a checkpoint.

Processes started through start_proc() are killed at the end of each test by
the autouse fixture `reaper` (import it into the test module).
"""
import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

try:  # the writer runs this file as a script, without pytest around
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

from conftest import BIN, ROOT, Result, integrity, run  # noqa: E402,F401 (integrity: re-exported)

LITESTREAM = os.path.join(ROOT, "tests", "tools", "node_modules", "@flydotio",
                          "litestream-linux-x64", "litestream")
PY = sys.executable
HELPER = os.path.abspath(__file__)

SCHEMA = ("CREATE TABLE IF NOT EXISTS log(seq INTEGER PRIMARY KEY, txn INTEGER NOT NULL, "
          "ntx INTEGER NOT NULL, payload BLOB NOT NULL, ck TEXT NOT NULL)")


def file_url(path):
    """file:///abs/path for a local replica directory."""
    return "file://" + os.path.abspath(str(path))


# ---------------------------------------------------------------- processes

_PROCS = []


class Proc:
    """A child process whose stdout+stderr go to a log file."""

    def __init__(self, argv, log, env=None, cwd=None):
        self.argv = [str(a) for a in argv]
        self.log = str(log)
        e = dict(os.environ)
        if env:
            e.update(env)
        self._logf = open(self.log, "ab")
        self.p = subprocess.Popen(self.argv, stdout=self._logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=e, cwd=cwd)
        _PROCS.append(self)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait(self, timeout=120):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("%s did not exit within %ss; log:\n%s"
                                 % (" ".join(self.argv), timeout, self.tail()))
        finally:
            if self.p.poll() is not None:
                self._logf.close()

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def stop(self, timeout=120):
        """SIGTERM, then wait: returns the exit status."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill9(self):
        self.signal(signal.SIGKILL)
        return self.wait(30)

    def tail(self, n=60):
        return "\n".join(self.text().splitlines()[-n:])

    def wait_log(self, pattern, timeout=60, count=1, since=0):
        """Wait until `pattern` (regex) occurs `count` times in the log after
        character `since`; fails if the process exits first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            txt = self.text()[since:]
            if len(rx.findall(txt)) >= count:
                return txt
            if not self.alive():
                raise AssertionError("process exited (rc=%s) before logging %r; log:\n%s"
                                     % (self.p.returncode, pattern, self.tail()))
            if time.monotonic() > deadline:
                raise AssertionError("no %r in %ss; log:\n%s" % (pattern, timeout, self.tail()))
            time.sleep(0.05)


def start_proc(argv, log, env=None, cwd=None):
    return Proc(argv, log, env=env, cwd=cwd)


def kill_all():
    while _PROCS:
        p = _PROCS.pop()
        if p.alive():
            try:
                p.p.kill()
                p.p.wait(10)
            except Exception:
                pass
        try:
            p._logf.close()
        except Exception:
            pass


if pytest is not None:
    @pytest.fixture(autouse=True)
    def reaper():
        """Kill every process a test started, whatever happened."""
        yield
        kill_all()


def replicator(tmp, *args, name="litesafe", level="debug", env=None):
    """Start `litesafe replicate --log-level LEVEL ARGS...` in the background."""
    n = 0
    while os.path.exists(os.path.join(str(tmp), "%s-%d.log" % (name, n))):
        n += 1
    log = os.path.join(str(tmp), "%s-%d.log" % (name, n))
    return start_proc([BIN, "replicate", "--log-level", level] + [str(a) for a in args], log,
                      env=env)


def litestream_replicator(tmp, *args, name="litestream"):
    n = 0
    while os.path.exists(os.path.join(str(tmp), "%s-%d.log" % (name, n))):
        n += 1
    log = os.path.join(str(tmp), "%s-%d.log" % (name, n))
    return start_proc([LITESTREAM, "replicate"] + [str(a) for a in args], log)


def write_config(path, db, replica_dir, db_keys=None, replica_keys=None):
    """A Litestream-style YAML config for one database and one file replica."""
    lines = ["dbs:", "  - path: %s" % db]
    for k, v in (db_keys or {}).items():
        lines.append("    %s: %s" % (k, v))
    lines.append("    replicas:")
    lines.append("      - url: %s" % file_url(replica_dir))
    for k, v in (replica_keys or {}).items():
        lines.append("        %s: %s" % (k, v))
    with open(str(path), "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def write_s3_config(path, db, env, prefix, name=None, bucket=None, secret=None, keys=True,
                    extra=None):
    """A Litestream 0.3 YAML config replicating db to the test S3 server
    (env: the `servers` fixture's LS_TEST_S3_* settings) under `prefix`;
    Litestream 0.3.13 reads the same file. bucket / secret override the
    server's; keys=False leaves the credentials to the environment; extra:
    more replica keys."""
    lines = ["dbs:", "  - path: %s" % db, "    replicas:"]
    if name:
        lines.append("      - name: %s" % name)
    lines += ["      %s type: s3" % (" " if name else "-"),
              "        bucket: %s" % (bucket or env["LS_TEST_S3_BUCKET"]),
              "        path: %s" % prefix,
              "        endpoint: %s" % env["LS_TEST_S3_ENDPOINT"],
              "        region: %s" % env["LS_TEST_S3_REGION"],
              "        force-path-style: true"]
    if keys:
        lines += ["        access-key-id: %s" % env["LS_TEST_S3_ACCESS_KEY"],
                  "        secret-access-key: %s" % (secret or env["LS_TEST_S3_SECRET_KEY"])]
    for k, v in (extra or {}).items():
        lines.append("        %s: %s" % (k, v))
    with open(str(path), "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


# ---------------------------------------------------------------- the writer

def writer_argv(db, progress, **kw):
    """Command line running the writer (see writer_main for the options)."""
    argv = [PY, HELPER, "writer", str(db), "--progress", str(progress)]
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            argv.append(flag)
        elif v is not None and v is not False:
            argv += [flag, str(v)]
    return argv


def write(db, progress, timeout=600, **kw):
    """Run the writer to completion in a child process; returns its progress."""
    p = subprocess.run(writer_argv(db, progress, **kw), capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, "writer failed rc=%d\n%s\n%s" % (p.returncode, p.stdout, p.stderr)
    return read_progress(progress)


def start_writer(tmp, db, progress, name="writer", **kw):
    n = 0
    while os.path.exists(os.path.join(str(tmp), "%s-%d.log" % (name, n))):
        n += 1
    return start_proc(writer_argv(db, progress, **kw),
                      os.path.join(str(tmp), "%s-%d.log" % (name, n)))


class Progress:
    def __init__(self):
        self.commits = []      # (txn, last_seq, t_begin, t_committed)
        self.checkpoints = []  # (mode, result tuple or ("locked", msg))


def read_progress(path):
    pr = Progress()
    if not os.path.exists(str(path)):
        return pr
    with open(str(path)) as f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn by a kill -9
            w = line.split()
            if w[0] == "C":
                pr.commits.append((int(w[1]), int(w[2]), float(w[3]), float(w[4])))
            elif w[0] == "K":
                if w[2] == "locked":
                    pr.checkpoints.append((w[1], ("locked", " ".join(w[3:]))))
                else:
                    pr.checkpoints.append((w[1], (int(w[2]), int(w[3]), int(w[4]))))
    return pr


def _range(s):
    a, _, b = str(s).partition(":")
    return int(a), int(b or a)


def writer_main(argv):
    import argparse
    import random
    ap = argparse.ArgumentParser(prog="writer")
    ap.add_argument("db")
    ap.add_argument("--progress", required=True)
    ap.add_argument("--txns", type=int, default=0, help="transactions (0: until --stop-file)")
    ap.add_argument("--stop-file")
    ap.add_argument("--rows", default="1:5", help="rows per transaction, MIN:MAX")
    ap.add_argument("--payload", default="50:3000", help="payload bytes per row, MIN:MAX")
    ap.add_argument("--big-every", type=int, default=0, help="every Nth transaction is big")
    ap.add_argument("--big-bytes", type=int, default=4 << 20)
    ap.add_argument("--big-row", type=int, default=64 << 10)
    ap.add_argument("--sleep", type=float, default=0.0, help="pause between transactions")
    ap.add_argument("--row-sleep", type=float, default=0.0, help="pause between rows (in a txn)")
    ap.add_argument("--cache-kib", type=int, default=0,
                    help="page cache size: a small one spills uncommitted frames to the WAL")
    ap.add_argument("--checkpoint-every", type=int, default=0)
    ap.add_argument("--checkpoint-modes", default="PASSIVE,FULL,RESTART,TRUNCATE")
    ap.add_argument("--checkpoint-busy-ms", type=int, default=200)
    ap.add_argument("--autocheckpoint", type=int, default=-1, help="wal_autocheckpoint (-1: keep)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--page-size", type=int, default=0, help="for a new database")
    ap.add_argument("--exit-open", action="store_true",
                    help="exit without closing the connection (the WAL stays)")
    a = ap.parse_args(argv)

    rng = random.Random(a.seed)
    rmin, rmax = _range(a.rows)
    pmin, pmax = _range(a.payload)
    modes = [m.strip().upper() for m in a.checkpoint_modes.split(",") if m.strip()]
    db = sqlite3.connect(a.db, isolation_level=None, timeout=5.0)
    db.execute("PRAGMA busy_timeout=5000")
    if a.page_size:
        db.execute("PRAGMA page_size=%d" % a.page_size)
    mode = db.execute("PRAGMA journal_mode=wal").fetchone()[0]
    if mode != "wal":
        print("journal_mode=%s" % mode, file=sys.stderr)
        return 4
    if a.cache_kib:
        db.execute("PRAGMA cache_size=-%d" % a.cache_kib)
    if a.autocheckpoint >= 0:
        db.execute("PRAGMA wal_autocheckpoint=%d" % a.autocheckpoint)
    db.execute(SCHEMA)
    row = db.execute("SELECT seq, txn, ck FROM log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, txn, ck = row if row else (0, 0, "")
    prog = open(a.progress, "a")
    done = 0
    while True:
        if a.txns and done >= a.txns:
            break
        if a.stop_file and os.path.exists(a.stop_file):
            break
        txn += 1
        if a.big_every and txn % a.big_every == 0:
            sizes = [a.big_row] * max(1, a.big_bytes // a.big_row)
        else:
            sizes = [rng.randint(pmin, pmax) for _ in range(rng.randint(rmin, rmax))]
        t0 = time.time()
        db.execute("BEGIN IMMEDIATE")
        for sz in sizes:
            seq += 1
            payload = os.urandom(sz)
            ck = hashlib.sha256(ck.encode() + payload).hexdigest()
            db.execute("INSERT INTO log(seq, txn, ntx, payload, ck) VALUES(?,?,?,?,?)",
                       (seq, txn, len(sizes), payload, ck))
            if a.row_sleep:
                time.sleep(a.row_sleep)
        db.execute("COMMIT")
        t1 = time.time()
        prog.write("C %d %d %.6f %.6f\n" % (txn, seq, t0, t1))
        prog.flush()
        done += 1
        if a.checkpoint_every and done % a.checkpoint_every == 0:
            m = modes[(done // a.checkpoint_every - 1) % len(modes)]
            db.execute("PRAGMA busy_timeout=%d" % a.checkpoint_busy_ms)
            try:
                r = db.execute("PRAGMA wal_checkpoint(%s)" % m).fetchone()
                prog.write("K %s %d %d %d\n" % (m, r[0], r[1], r[2]))
            except sqlite3.OperationalError as e:
                msg = str(e)
                if "locked" not in msg and "busy" not in msg:
                    prog.write("K %s error %s\n" % (m, msg.replace("\n", " ")))
                    prog.flush()
                    print("checkpoint %s failed: %s" % (m, msg), file=sys.stderr)
                    return 3
                prog.write("K %s locked %s\n" % (m, msg.replace("\n", " ")))
            prog.flush()
            db.execute("PRAGMA busy_timeout=5000")
        if a.sleep:
            time.sleep(a.sleep)
    prog.close()
    if a.exit_open:
        os._exit(0)
    db.close()
    return 0


# ---------------------------------------------------------------- checking content

class LogState:
    def __init__(self, rows, txns, ck, cks=None):
        self.rows = rows    # max seq (= number of rows)
        self.txns = txns    # max txn
        self.ck = ck        # running checksum at the last row
        self.cks = cks      # {seq: ck} at every transaction end, if asked

    def __repr__(self):
        return "LogState(rows=%d, txns=%d)" % (self.rows, self.txns)


def check_log(path, ref=None, want_cks=False):
    """Check the log table of a database: contiguous seq 1..N, whole
    transactions only, valid running checksum. With ref (a LogState with cks,
    normally the source's), the content must be a prefix of ref's, byte for
    byte: the checksum at N must equal ref's at N (N must be a commit point
    of the source). Returns a LogState."""
    db = sqlite3.connect(str(path))
    try:
        cur = db.execute("SELECT seq, txn, ntx, payload, ck FROM log ORDER BY seq")
        expect_seq, cur_txn, cur_n, cur_cnt, ck = 1, 0, 0, 0, ""
        cks = {} if want_cks else None
        for seq, txn, ntx, payload, rck in cur:
            assert seq == expect_seq, "%s: seq %d follows %d (hole)" % (path, seq, expect_seq - 1)
            expect_seq += 1
            if txn != cur_txn:
                assert cur_cnt == cur_n, "%s: txn %d torn: %d of %d rows" % (path, cur_txn,
                                                                          cur_cnt, cur_n)
                assert txn == cur_txn + 1, "%s: txn %d follows %d" % (path, txn, cur_txn)
                if cks is not None and cur_txn:
                    cks[seq - 1] = ck
                cur_txn, cur_n, cur_cnt = txn, ntx, 0
            assert ntx == cur_n, "%s: seq %d: ntx %d != %d" % (path, seq, ntx, cur_n)
            cur_cnt += 1
            ck = hashlib.sha256(ck.encode() + payload).hexdigest()
            assert rck == ck, "%s: seq %d: running checksum breaks" % (path, seq)
        assert cur_cnt == cur_n, "%s: last txn %d torn: %d of %d rows" % (path, cur_txn,
                                                                         cur_cnt, cur_n)
        rows = expect_seq - 1
        if cks is not None and cur_txn:
            cks[rows] = ck
        st = LogState(rows, cur_txn, ck, cks)
    finally:
        db.close()
    if ref is not None and rows:
        assert ref.cks is not None
        assert rows in ref.cks, "%s: %d rows is not a commit point of the source" % (path, rows)
        assert ref.cks[rows] == ck, "%s: content differs from the source's first %d rows" % (
            path, rows)
    return st


def digest(path):
    """SHA-256 over the whole logical content: schema, then every table's rows
    in rowid order (sqlite_stat*, sqlite_sequence included)."""
    db = sqlite3.connect(str(path))
    try:
        h = hashlib.sha256()
        objs = db.execute("SELECT type, name, tbl_name, coalesce(sql,'') FROM sqlite_master "
                          "ORDER BY type, name").fetchall()
        for o in objs:
            h.update(repr(o).encode())
        for typ, name, _, sql in objs:
            if typ != "table" or sql.upper().startswith("CREATE VIRTUAL"):
                continue
            h.update(b"\0table " + name.encode())
            for r in db.execute('SELECT * FROM "%s" ORDER BY rowid' % name.replace('"', '""')):
                h.update(repr(r).encode())
        for p in ("user_version", "application_id"):
            h.update(repr(db.execute("PRAGMA " + p).fetchone()).encode())
        return h.hexdigest()
    finally:
        db.close()


def page_count(path):
    db = sqlite3.connect(str(path))
    try:
        return db.execute("PRAGMA page_count").fetchone()[0]
    finally:
        db.close()


# ---------------------------------------------------------------- replicas

_n = [0]


def fresh(tmp, stem="r"):
    """A path in tmp that does not exist yet."""
    while True:
        _n[0] += 1
        p = os.path.join(str(tmp), "%s-%d.db" % (stem, _n[0]))
        if not os.path.exists(p):
            return p


def restore(tmp, source, *opts, stem="restored", expect_ok=True, env=None):
    """litesafe restore -o NEW [opts] SOURCE; returns (path, Result)."""
    out = fresh(tmp, stem)
    r = run("restore", "-o", out, *opts, source, timeout=600, env=env)
    if expect_ok:
        assert r.rc == 0, "restore %s %s failed: %r" % (source, opts, r)
        assert os.path.exists(out)
    return out, r


def litestream_restore(tmp, source, *opts, stem="ls-restored", expect_ok=True):
    out = fresh(tmp, stem)
    p = subprocess.run([LITESTREAM, "restore", "-o", out] + [str(o) for o in opts] + [source],
                       capture_output=True, text=True, timeout=600)
    if expect_ok:
        assert p.returncode == 0, "litestream restore %s failed rc=%d\n%s\n%s" % (
            opts, p.returncode, p.stdout, p.stderr)
    return out, p


def wait_replicated(tmp, url, src_digest, timeout=120, what="the source", env=None):
    """Restore the replica's latest state until it equals src_digest (a
    digest, or a function returning the current one). The writer must be
    idle. Returns the matching restored path."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        out, r = restore(tmp, url, stem="probe", expect_ok=False, env=env)
        if r.rc == 0:
            want = src_digest() if callable(src_digest) else src_digest
            if digest(out) == want:
                return out
            last = "content differs"
        else:
            last = r.err.strip()
        if os.path.exists(out):
            os.unlink(out)
        if time.monotonic() > deadline:
            raise AssertionError("replica %s never caught up with %s in %ss (%s)"
                                 % (url, what, timeout, last))
        time.sleep(0.3)


def restore_cfg(tool, tmp, cfg, db, *opts, expect_ok=True, env=None):
    """`TOOL restore -config CFG -o NEW [opts] DB` with tool "litesafe" or
    "litestream" (Litestream 0.3.13 reads the same config files); env: extra
    environment variables. Returns (path, Result); with expect_ok the restore
    must succeed."""
    out = fresh(tmp, "restored" if tool == "litesafe" else "%s-restored" % tool)
    if tool == "litesafe":
        r = run("restore", "-config", cfg, "-o", out, *opts, db, timeout=300, env=env)
    else:
        assert tool == "litestream", tool
        e = dict(os.environ, **(env or {}))
        r = Result(subprocess.run([LITESTREAM, "restore", "-config", str(cfg), "-o", out] +
                                  [str(o) for o in opts] + [str(db)], capture_output=True,
                                  text=True, timeout=300, env=e))
    if expect_ok:
        assert r.rc == 0, "%s restore -config %s %s failed: %r" % (tool, cfg, opts, r)
        assert os.path.exists(out)
    return out, r


def wait_restorable(tool, tmp, cfg, db, want, timeout=60, interval=0.3, env=None):
    """Restore db's replica from the config file (restore_cfg) until it
    equals `want`: a digest, or a function returning the current one (a
    source Litestream replicates changes: it writes its own tables). The
    writer must be idle. Returns the matching restored path."""
    deadline = time.monotonic() + timeout
    while True:
        out, r = restore_cfg(tool, tmp, cfg, db, expect_ok=False, env=env)
        if r.rc == 0:
            if digest(out) == (want() if callable(want) else want):
                return out
            last = "content differs"
        else:
            last = "rc=%d %s" % (r.rc, (r.err or r.out).strip())
        if os.path.exists(out):
            os.unlink(out)
        if time.monotonic() > deadline:
            raise AssertionError("%s never restored the wanted state from the replica in %s "
                                 "within %ss: %s" % (tool, cfg, timeout, last))
        time.sleep(interval)


def replicate_workload(tool, tmp, cfg, db, first, then, min_indexes=0):
    """`tool` ("litesafe" or "litestream") replicates db through the config
    file cfg: `first` (write() options) is written before it starts, `then`
    (start_writer() options) while it runs; once the writer is done, litesafe
    restores until it equals the source, and the replicator is stopped
    (litesafe must exit 0). min_indexes (litesafe): commit more until the
    replica holds that many WAL indexes of the generation (the paced
    checkpoint cycle may not have come while a fast writer ran). Returns
    (restored path, the source's LogState with checksums)."""
    progress = os.path.join(str(tmp), "progress")
    write(db, progress, **first)
    start = replicator if tool == "litesafe" else litestream_replicator
    rep = start(tmp, "-config", cfg)
    if tool == "litesafe":
        # Open before the writer starts: a slow start (valgrind) saw the
        # writer's own checkpoints restart the WAL unwatched, and the replica
        # then held fewer WAL indexes than the tests expect.
        rep.wait_log(r'msg="source open"', timeout=60)
    w = start_writer(tmp, db, progress, **then)
    assert w.wait(300) == 0, w.tail()
    deadline, seed = time.monotonic() + 120, 1000
    while min_indexes and len(wal_indexes(cfg, db)) < min_indexes:
        assert time.monotonic() < deadline, rep.tail()
        write(db, progress, txns=40, seed=seed)
        seed += 1
        time.sleep(0.5)
    src = check_log(db, want_cks=True)
    if tool == "litesafe":
        out = wait_restorable("litesafe", tmp, cfg, db, digest(db), interval=0.5)
        assert rep.stop() == 0, rep.tail()
    else:
        # Litestream syncs once a second (and writes its own tables into db).
        out = wait_restorable("litesafe", tmp, cfg, db, lambda: digest(db), interval=1)
        rep.signal(signal.SIGTERM)
        rep.wait(60)
    return out, src


def wal_indexes(cfg, db):
    """The WAL indexes of db's replica (through config cfg) that hold segments."""
    return {x["index"] for x in listing("wal", "-config", cfg, db)}


def listing(cmd, *source, env=None):
    """`litesafe CMD SOURCE... --json` (generations, snapshots or wal; source
    "-config", cfg, db or a URL): the list it prints."""
    r = run(cmd, *source, "--json", env=env)
    assert r.rc == 0, r
    return r.json[cmd]


def stop_ok(rep):
    """Stop a replicator with SIGTERM: it must exit 0 and have logged no error."""
    rc = rep.stop()
    assert rc == 0, "replicate exited %d on SIGTERM; log:\n%s" % (rc, rep.tail())
    assert "level=ERROR" not in rep.text(), rep.tail()


def ls_json(cmd, url, *opts):
    r = run(cmd, url, "--json", *opts)
    assert r.rc == 0, r
    return r.json


def generations(url):
    return ls_json("generations", url)["generations"]


def wal_segments(url, *opts):
    return ls_json("wal", url, *opts)["wal"]


def snapshots(url, *opts):
    return ls_json("snapshots", url, *opts)["snapshots"]


def replica_files(root):
    """Every file below a replica root, relative."""
    out = []
    for d, _, files in os.walk(str(root)):
        for f in files:
            out.append(os.path.relpath(os.path.join(d, f), str(root)))
    return sorted(out)


def stray_temp_files(root):
    return [f for f in replica_files(root) if "tmp" in os.path.basename(f)]


SEG_RX = re.compile(r"^([0-9a-f]{8})_([0-9a-f]{8})\.wal\.lz4$")
SNAP_RX = re.compile(r"^([0-9a-f]{8})\.snapshot\.lz4$")


def replica_objects(root, gen, kind="wal"):
    """[(index, offset, mtime_ms, path)] of one generation's segments (kind
    "wal") or [(index, 0, mtime_ms, path)] of its snapshots, read straight from
    a file replica, sorted by (index, offset)."""
    d = os.path.join(str(root), "generations", gen, "wal" if kind == "wal" else "snapshots")
    out = []
    if not os.path.isdir(d):
        return out
    for f in os.listdir(d):
        m = (SEG_RX if kind == "wal" else SNAP_RX).match(f)
        if not m:
            continue
        p = os.path.join(d, f)
        ms = os.stat(p).st_mtime_ns // 1000000
        if kind == "wal":
            out.append((int(m.group(1), 16), int(m.group(2), 16), ms, p))
        else:
            out.append((int(m.group(1), 16), 0, ms, p))
    return sorted(out)


def lz4_len(path):
    """Decompressed length of one LZ4-frame object (lz4 command line tool)."""
    p = subprocess.run(["lz4", "-dc", str(path)], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return len(p.stdout)


def parse_pos(pos):
    """'<gen>/<index hex>:<offset>' -> (gen, index, offset)."""
    gen, _, rest = pos.partition("/")
    idx, _, off = rest.partition(":")
    return gen, int(idx, 16), int(off)


def rfc3339(t):
    """RFC 3339 UTC with milliseconds (truncated), for -timestamp."""
    ms = int(t * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def litestream_table(*args):
    """Run a Litestream listing command; returns a list of dicts (header keys)."""
    p = subprocess.run([LITESTREAM] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, "litestream %s: rc=%d %s %s" % (args, p.returncode, p.stdout,
                                                             p.stderr)
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    if not lines:
        return []
    hdr = lines[0].split()
    return [dict(zip(hdr, l.split())) for l in lines[1:]]


def litesafe_table(*args):
    r = run(*args)
    assert r.rc == 0, r
    lines = [l for l in r.out.splitlines() if l.strip()]
    if not lines:
        return []
    hdr = lines[0].split()
    return [dict(zip(hdr, l.split())) for l in lines[1:]]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "writer":
        sys.exit(writer_main(sys.argv[2:]))
    sys.exit("usage: repl_helpers.py writer DB --progress FILE [options]")
