#!/usr/bin/env python3
"""A soak run of `litesafe replicate`: hours of mixed work under trouble,
checked as it goes. `make soak DURATION=3600` runs it (never in CI).

One replicator serves three databases:

  app    the ledger writer of the integration tests (every row carries a
         running SHA-256, so any restore can be checked as a state the source
         really had), in phases of bursts (no pause) and calm (20 commits a
         second), checkpointing on its own every 300 commits; a reader pins
         an old snapshot of it for minutes at a time.
         Replicas: S3 (through a proxy that can throttle), SFTP, a local dir.
  big    a 20 MiB row every 45 s, the oldest deleted beyond three (the WAL
         carries big frames, the file shrinks and grows).
         Replicas: a local dir on a small tmpfs (filled up on purpose), S3.
  churn  small upserts and deletes five times a second; now and then the
         database is deleted and created again from nothing under the
         replicator. Replicas: a local dir, S3.

Trouble, one event at a time at random intervals (seeded): the S3 server
stopped and restarted on its port, S3 throttled (429 SlowDown) for a while,
the SFTP server restarted, the tmpfs of big's replica filled to the last
MiB for a minute, the replicator stopped cleanly (must exit 0) or killed
with SIGKILL and started again.

Checks:
  - every minute, app is restored from its local replica while it runs and
    the result checked against the ledger (whole transactions, a checksum
    the source had at that row count);
  - every COMPARE_EVERY seconds the writers pause, the trouble is put right,
    and every replica of every database must restore to exactly the source
    (logical digest) within CONVERGE_TIMEOUT; the time that takes is the
    catch-up lag;
  - every 5 s: the replicator's RSS, peak RSS and open descriptors, and the
    lag every replica reports (`litesafe status --json`; "quiet" when
    nothing went wrong for a minute: the largest per database and replica
    in the summary, and a line for each quiet lag over 10 s);
  - at the end: a last compare, a clean stop (exit 0), the ledger restores
    checked against the source's checksums.

Anything lost or wrong ends the run with exit 1; the summary (JSON) is
printed and written to WORKDIR/summary.json either way.

    soak.py --duration SECONDS [--workdir DIR] [--seed N] [--keep]
"""
import argparse
import faulthandler
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "servers"))

import repl_helpers as rh  # noqa: E402
import s3_server  # noqa: E402
import sftp_server  # noqa: E402
from throttle_proxy import ThrottleProxy  # noqa: E402

BIN = rh.BIN
COMPARE_EVERY = 360
CONVERGE_TIMEOUT = 300
SAMPLE_EVERY = 5
LEDGER_EVERY = 60
BIG_ROW = 20 << 20
TMPFS_SIZE = "1g"


def log(msg):
    sys.stdout.write("%s soak: %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stdout.flush()


class Failure(Exception):
    """Something was lost or wrong: the run fails."""


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.d = {"cycles": 0, "restores_compared": 0, "ledger_restores": 0,
                  "max_rss_kib": 0, "max_hwm_kib": 0, "max_fds": 0,
                  "max_lag_s": 0.0, "max_lag_quiet_s": 0.0, "max_catch_up_s": 0.0,
                  "events": {}, "lag_quiet_s": {}, "replicator_starts": 0, "recreated": 0, "big_rows": 0,
                  "pins": 0, "app_rows": 0, "errors_logged": 0, "lost": []}

    def add(self, key, n=1):
        with self.lock:
            self.d[key] += n

    def top(self, key, v):
        with self.lock:
            if v > self.d[key]:
                self.d[key] = v

    def top_in(self, key, sub, v):
        with self.lock:
            if v > self.d[key].get(sub, 0.0):
                self.d[key][sub] = v

    def event(self, name):
        with self.lock:
            self.d["events"][name] = self.d["events"].get(name, 0) + 1


# ---------------------------------------------------------------- the workload

class Pausable(threading.Thread):
    """A worker thread that stops at a pause() until resume(); step() is one
    unit of work, called again and again while not paused. A long step
    returns early once pausing() is true. pause() returns once the worker
    acknowledged (paused is set under the condition), so a compare never
    runs next to a step."""

    def __init__(self, name):
        super().__init__(name=name, daemon=True)
        self.cv = threading.Condition()
        self.want = False    # a pause was asked for
        self.paused = False  # the worker is parked
        self.done = threading.Event()
        self.error = None

    def pausing(self):
        with self.cv:
            return self.want

    def pause(self, timeout=180):
        with self.cv:
            self.want = True
            if not self.cv.wait_for(lambda: self.paused or self.error, timeout):
                raise Failure("%s did not pause within %ss" % (self.name, timeout))
        if self.error:
            raise Failure(self.error)

    def resume(self):
        with self.cv:
            self.want = False
            self.cv.notify_all()

    def run(self):
        try:
            while not self.done.is_set():
                if self.pausing():
                    self.on_pause()
                    with self.cv:
                        self.paused = True
                        self.cv.notify_all()
                        self.cv.wait_for(lambda: not self.want or self.done.is_set())
                        self.paused = False
                    continue
                self.step()
        except Exception as e:  # noqa: BLE001 - reported by the main loop
            with self.cv:
                self.error = "%s: %s" % (self.name, traceback.format_exc())
                self.cv.notify_all()
            log("worker %s failed: %s" % (self.name, e))

    def on_pause(self):
        pass


class AppWriter(Pausable):
    """The ledger writer (a child process), in bursts and calm phases."""

    def __init__(self, wd, db, rng):
        super().__init__("app-writer")
        self.wd, self.db, self.rng = wd, db, rng
        self.prog = os.path.join(wd, "app.progress")
        self.stopf = os.path.join(wd, "app.stop")
        self.proc = None
        self.phase_end = 0

    def _start(self):
        burst = self.rng.random() < 0.3
        if os.path.exists(self.stopf):
            os.unlink(self.stopf)
        self.proc = rh.start_writer(self.wd, self.db, self.prog, stop_file=self.stopf,
                                    sleep=0 if burst else 0.05, rows="1:8", payload="50:400",
                                    checkpoint_every=300, seed=self.rng.randrange(1 << 30))
        self.phase_end = time.monotonic() + (self.rng.uniform(10, 20) if burst
                                             else self.rng.uniform(60, 120))

    def _stop(self):
        if self.proc:
            with open(self.stopf, "w"):
                pass
            rc = self.proc.wait(120)
            if rc != 0:
                raise Failure("app writer exited %d: %s" % (rc, self.proc.tail()))
            self.proc = None

    def step(self):
        if self.proc is None:
            self._start()
        if not self.proc.alive():
            raise Failure("app writer died: %s" % self.proc.tail())
        if time.monotonic() > self.phase_end:
            self._stop()
        time.sleep(0.1)

    def on_pause(self):
        self._stop()


class Pinner(Pausable):
    """A reader holding one read transaction on app for minutes."""

    def __init__(self, db, rng, stats):
        super().__init__("pinner")
        self.db, self.rng, self.stats = db, rng, stats
        self.next = time.monotonic() + rng.uniform(60, 180)

    def step(self):
        if time.monotonic() < self.next:
            time.sleep(0.2)
            return
        c = sqlite3.connect(self.db, isolation_level=None, timeout=30)
        try:
            c.execute("BEGIN")
            c.execute("SELECT count(*) FROM log").fetchone()
            until = time.monotonic() + self.rng.uniform(120, 240)
            self.stats.add("pins")
            while time.monotonic() < until and not self.pausing():
                time.sleep(0.2)
            c.execute("COMMIT")
        finally:
            c.close()
        self.next = time.monotonic() + self.rng.uniform(240, 480)


class BigWriter(Pausable):
    """A 20 MiB row every 45 s; at most three kept."""

    def __init__(self, db, stats):
        super().__init__("big-writer")
        self.db, self.stats = db, stats
        self.next = 0

    def step(self):
        if time.monotonic() < self.next:
            time.sleep(0.2)
            return
        c = sqlite3.connect(self.db, isolation_level=None, timeout=30)
        try:
            c.execute("PRAGMA journal_mode=wal")
            c.execute("CREATE TABLE IF NOT EXISTS big(id INTEGER PRIMARY KEY, b BLOB)")
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO big(b) VALUES(?)", (os.urandom(BIG_ROW),))
            c.execute("DELETE FROM big WHERE id NOT IN (SELECT id FROM big ORDER BY id DESC "
                      "LIMIT 3)")
            c.execute("COMMIT")
        finally:
            c.close()
        self.stats.add("big_rows")
        self.next = time.monotonic() + 45


class ChurnWriter(Pausable):
    """Upserts and deletes; the database deleted and created anew at times."""

    def __init__(self, db, rng, stats):
        super().__init__("churn-writer")
        self.db, self.rng, self.stats = db, rng, stats
        self.c = None
        self.recreate_at = time.monotonic() + rng.uniform(200, 400)

    def _open(self):
        self.c = sqlite3.connect(self.db, isolation_level=None, timeout=30)
        self.c.execute("PRAGMA journal_mode=wal")
        self.c.execute("CREATE TABLE IF NOT EXISTS kv(k INTEGER PRIMARY KEY, v BLOB)")

    def on_pause(self):
        if self.c:
            self.c.close()
            self.c = None

    def step(self):
        if time.monotonic() > self.recreate_at:
            self.on_pause()
            for sfx in ("", "-wal", "-shm"):
                try:
                    os.unlink(self.db + sfx)
                except FileNotFoundError:
                    pass
            self.stats.add("recreated")
            self.recreate_at = time.monotonic() + self.rng.uniform(200, 400)
        if self.c is None:
            self._open()
        self.c.execute("BEGIN IMMEDIATE")
        for _ in range(self.rng.randint(1, 20)):
            k = self.rng.randrange(2000)
            if self.rng.random() < 0.3:
                self.c.execute("DELETE FROM kv WHERE k=?", (k,))
            else:
                self.c.execute("INSERT OR REPLACE INTO kv VALUES(?,?)",
                               (k, os.urandom(self.rng.randint(10, 2000))))
        self.c.execute("COMMIT")
        time.sleep(0.2)


# ---------------------------------------------------------------- the setting

class Soak:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.wd = a.workdir
        self.stats = Stats()
        self.dbs = {n: os.path.join(self.wd, "dbs", n + ".db") for n in ("app", "big", "churn")}
        self.sock = os.path.join(self.wd, "ctl.sock")
        self.cfg = os.path.join(self.wd, "litesafe.yml")
        self.rep = None
        self.trouble = threading.Lock()  # held by an event and by a compare
        self.quiet_since = time.monotonic()
        self.ledger = []  # (rows, ck) of the app restores taken while writing
        self.stop = threading.Event()
        self.small = os.path.join(self.wd, "small")
        self.mounted = False
        self.s3 = self.sftp = self.proxy = None

    # -- servers and disks

    def start_servers(self):
        self.s3 = s3_server.start(os.path.join(self.wd, "s3"))
        self.proxy = ThrottleProxy(self.s3["env"]["LS_TEST_S3_ENDPOINT"]).start()
        self.sftp = sftp_server.start(os.path.join(self.wd, "sftp"))
        os.makedirs(self.small, exist_ok=True)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + TMPFS_SIZE, "tmpfs",
                            self.small], capture_output=True, text=True)
        self.mounted = p.returncode == 0
        if not self.mounted:
            log("no tmpfs (%s): the disk-full event is off" % p.stderr.strip())

    def stop_servers(self):
        for stop, info in ((s3_server.stop, self.s3), (sftp_server.stop, self.sftp)):
            if info:
                try:
                    stop(info)
                except Exception as e:  # noqa: BLE001
                    log("stopping a server: %s" % e)
        if self.proxy:
            self.proxy.stop()
        if self.mounted:
            subprocess.run(["umount", "-l", self.small])

    def write_config(self):
        s3e, sf = self.s3["env"], self.sftp["env"]

        def s3(name, prefix):
            return ["      - name: %s" % name, "        type: s3",
                    "        bucket: %s" % s3e["LS_TEST_S3_BUCKET"],
                    "        path: soak/%s" % prefix,
                    "        endpoint: %s" % self.proxy.url,
                    "        region: %s" % s3e["LS_TEST_S3_REGION"],
                    "        force-path-style: true",
                    "        access-key-id: %s" % s3e["LS_TEST_S3_ACCESS_KEY"],
                    "        secret-access-key: %s" % s3e["LS_TEST_S3_SECRET_KEY"]]

        def local(name, path):
            return ["      - name: %s" % name, "        url: %s" % rh.file_url(path)]

        busy = ["        snapshot-interval: 5m", "        retention: 15m",
                "        retention-check-interval: 1m"]
        lines = ["socket:", "  path: %s" % self.sock, "dbs:"]
        lines += ["  - path: %s" % self.dbs["app"], "    replicas:"]
        lines += s3("s3", "app") + busy
        lines += ["      - name: sftp", "        type: sftp",
                  "        host: %s" % sf["LS_TEST_SFTP_HOST"],
                  "        user: %s" % sf["LS_TEST_SFTP_USER"],
                  "        key-path: %s" % sf["LS_TEST_SFTP_KEY"],
                  "        known-hosts: %s" % sf["LS_TEST_SFTP_KNOWN_HOSTS"],
                  "        path: %s" % os.path.join(sf["LS_TEST_SFTP_ROOT"], "soak-app")] + busy
        lines += local("file", os.path.join(self.wd, "rep", "app")) + busy
        lines += ["  - path: %s" % self.dbs["big"], "    replicas:"]
        lines += local("file", os.path.join(self.small, "big")) + busy
        lines += s3("s3", "big") + busy
        lines += ["  - path: %s" % self.dbs["churn"], "    replicas:"]
        lines += local("file", os.path.join(self.wd, "rep", "churn")) + busy
        lines += s3("s3", "churn") + busy
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start_replicator(self):
        self.rep = rh.replicator(self.wd, "-config", self.cfg, level="info")
        self.rep.wait_log(r"source open", timeout=60, count=3)
        self.stats.add("replicator_starts")

    # -- trouble

    def event(self):
        """One piece of trouble, chosen at random, held for a while."""
        kinds = ["s3-restart", "s3-throttle", "sftp-restart", "restart-clean", "kill9"]
        if self.mounted:
            kinds.append("disk-full")
        kind = self.rng.choice(kinds)
        with self.trouble:
            self.stats.event(kind)
            log("event %s" % kind)
            if kind == "s3-restart":
                port = self.s3["port"]
                s3_server.stop(self.s3)
                self.sleep(self.rng.uniform(5, 30))
                self.s3 = s3_server.start(os.path.join(self.wd, "s3"), port=port)
            elif kind == "s3-throttle":
                self.proxy.throttle = True
                self.sleep(self.rng.uniform(20, 60))
                self.proxy.throttle = False
            elif kind == "sftp-restart":
                port = int(self.sftp["env"]["LS_TEST_SFTP_HOST"].rsplit(":", 1)[1])
                sftp_server.stop(self.sftp)
                self.sleep(self.rng.uniform(5, 30))
                self.sftp = sftp_server.start(os.path.join(self.wd, "sftp"), port=port)
            elif kind == "disk-full":
                ballast = os.path.join(self.small, "ballast")
                st = os.statvfs(self.small)
                free = st.f_bavail * st.f_frsize
                if free > 2 << 20:
                    with open(ballast, "wb") as f:
                        os.posix_fallocate(f.fileno(), 0, free - (1 << 20))
                self.sleep(self.rng.uniform(45, 90))
                if os.path.exists(ballast):
                    os.unlink(ballast)
            elif kind == "restart-clean":
                rc = self.rep.stop(120)
                if rc != 0:
                    raise Failure("replicator exited %d on SIGTERM: %s" % (rc, self.rep.tail()))
                self.start_replicator()
            elif kind == "kill9":
                self.rep.kill9()
                self.start_replicator()
            self.quiet_since = time.monotonic()

    def sleep(self, secs):
        end = time.monotonic() + secs
        while time.monotonic() < end and not self.stop.is_set():
            time.sleep(0.2)

    # -- checks

    def sample(self):
        pid = self.rep.pid if self.rep and self.rep.alive() else None
        if pid is None:
            return
        try:
            with open("/proc/%d/status" % pid) as f:
                st = dict(l.split(":", 1) for l in f if ":" in l)
            self.stats.top("max_rss_kib", int(st["VmRSS"].split()[0]))
            self.stats.top("max_hwm_kib", int(st["VmHWM"].split()[0]))
            self.stats.top("max_fds", len(os.listdir("/proc/%d/fd" % pid)))
        except (OSError, KeyError, ValueError):
            return  # it went away between the check and the read
        r = rh.run("status", "-socket", self.sock, "--json", timeout=30)
        if r.rc != 0:
            return
        try:
            doc = json.loads(r.out)
        except ValueError:
            raise Failure("status --json printed no JSON: %r" % r.out[:500])
        quiet = (not self.trouble.locked() and time.monotonic() - self.quiet_since > 60)
        for d in doc.get("databases", []):
            for rep in d.get("replicas", []):
                lag = rep.get("lag_seconds") or 0.0
                self.stats.top("max_lag_s", lag)
                if quiet:
                    self.stats.top("max_lag_quiet_s", lag)
                    where = "%s/%s" % (os.path.basename(d.get("path", "?")), rep.get("name", "?"))
                    self.stats.top_in("lag_quiet_s", where, lag)
                    if lag > 10:
                        log("quiet lag %.1f s on %s: %s" % (lag, where, json.dumps(rep)))

    def ledger_check(self):
        """Restore app from its local replica while it runs: a state the source had."""
        out, r = rh.restore_cfg("litesafe", self.wd, self.cfg, self.dbs["app"], "-replica", "file",
                                expect_ok=False)
        try:
            if r.rc != 0:
                if "no matching backup" in r.err and not self.ledger:
                    return
                raise Failure("restore of app while writing failed: %s" % r.err.strip())
            if rh.integrity(out) != "ok":
                raise Failure("restore of app while writing: integrity check failed")
            st = rh.check_log(out)
            self.ledger.append((st.rows, st.ck))
            self.stats.add("ledger_restores")
        finally:
            if os.path.exists(out):
                os.unlink(out)

    def compare(self):
        """Writers paused and trouble over: every replica restores to the source."""
        with self.trouble:
            workers = [w for w in self.workers]
            for w in workers:
                w.pause()
            t0 = time.monotonic()
            try:
                for name, db in self.dbs.items():
                    want = rh.digest(db)
                    for rep in self.replicas[name]:
                        self.converge(name, db, rep, want)
                lag = time.monotonic() - t0
                self.stats.top("max_catch_up_s", lag)
                self.stats.add("cycles")
                log("compare %d: every replica equals its source (%.1f s)" %
                    (self.stats.d["cycles"], lag))
            finally:
                for w in workers:
                    w.resume()
                self.quiet_since = time.monotonic()

    def converge(self, name, db, rep, want):
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        last = None
        while True:
            out, r = rh.restore_cfg("litesafe", self.wd, self.cfg, db, "-replica", rep,
                                    expect_ok=False)
            ok = r.rc == 0 and rh.digest(out) == want
            if r.rc == 0 and not ok:
                last = "content differs"
            elif r.rc != 0:
                last = r.err.strip()
            if os.path.exists(out):
                os.unlink(out)
            if ok:
                self.stats.add("restores_compared")
                return
            if time.monotonic() > deadline:
                raise Failure("%s replica %s never equalled the source in %ss: %s" %
                              (name, rep, CONVERGE_TIMEOUT, last))
            time.sleep(1)

    def check_workers(self):
        for w in self.workers:
            if w.error:
                raise Failure(w.error)
        if not self.rep.alive():
            raise Failure("replicator exited by itself (rc=%s): %s" %
                          (self.rep.p.returncode, self.rep.tail()))

    # -- the run

    def run(self):
        os.makedirs(os.path.join(self.wd, "dbs"), exist_ok=True)
        self.start_servers()
        self.write_config()
        self.replicas = {"app": ["s3", "sftp", "file"], "big": ["file", "s3"],
                         "churn": ["file", "s3"]}
        rh.write(self.dbs["app"], os.path.join(self.wd, "app.progress"), txns=20, seed=1)
        for db in ("big", "churn"):
            c = sqlite3.connect(self.dbs[db])
            c.execute("PRAGMA journal_mode=wal")
            c.close()
        self.start_replicator()
        self.workers = [AppWriter(self.wd, self.dbs["app"], random.Random(self.rng.random())),
                        Pinner(self.dbs["app"], random.Random(self.rng.random()), self.stats),
                        BigWriter(self.dbs["big"], self.stats),
                        ChurnWriter(self.dbs["churn"], random.Random(self.rng.random()),
                                    self.stats)]
        for w in self.workers:
            w.start()
        end = time.monotonic() + self.a.duration
        next_event = time.monotonic() + self.rng.uniform(30, 120)
        next_compare = time.monotonic() + min(COMPARE_EVERY, self.a.duration / 2)
        next_ledger = time.monotonic() + LEDGER_EVERY
        next_sample = 0
        event_thread = None
        while time.monotonic() < end:
            self.check_workers()
            now = time.monotonic()
            if now >= next_sample:
                self.sample()
                next_sample = now + SAMPLE_EVERY
            if now >= next_ledger:
                self.ledger_check()
                next_ledger = time.monotonic() + LEDGER_EVERY
            if now >= next_event and (event_thread is None or not event_thread.is_alive()):
                event_thread = threading.Thread(target=self.guarded, args=(self.event,),
                                                daemon=True)
                event_thread.start()
                next_event = time.monotonic() + self.rng.uniform(60, 180)
            if now >= next_compare:
                self.compare()
                next_compare = time.monotonic() + COMPARE_EVERY
            if self.event_error:
                raise Failure(self.event_error)
            time.sleep(0.5)
        self.stop.set()
        if event_thread:
            event_thread.join(300)
        if self.event_error:
            raise Failure(self.event_error)
        self.compare()
        for w in self.workers:
            w.pause()
        rc = self.rep.stop(120)
        if rc != 0:
            raise Failure("replicator exited %d at the end: %s" % (rc, self.rep.tail()))
        src = rh.check_log(self.dbs["app"], want_cks=True)
        self.stats.d["app_rows"] = src.rows
        for rows, ck in self.ledger:
            if rows and src.cks.get(rows) != ck:
                raise Failure("a restore of app with %d rows was not a state of the source" %
                              rows)
        for w in self.workers:
            w.done.set()

    event_error = None

    def count_log(self, what):
        """Lines with `what` in every replicator log of the run."""
        n = 0
        for name in os.listdir(self.wd):
            if name.startswith("litesafe-") and name.endswith(".log"):
                with open(os.path.join(self.wd, name), errors="replace") as f:
                    n += sum(1 for line in f if what in line)
        return n

    def guarded(self, fn):
        try:
            fn()
        except Exception:  # noqa: BLE001 - the main loop fails the run
            self.event_error = traceback.format_exc()


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, required=True, help="seconds of work")
    ap.add_argument("--workdir", help="kept after the run (default: a temporary one)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the temporary workdir")
    a = ap.parse_args(argv)
    if a.seed is None:
        a.seed = int(time.time() * 1000)
    tmp = None
    if not a.workdir:
        tmp = a.workdir = tempfile.mkdtemp(prefix="litesafe-soak-")
    a.workdir = os.path.abspath(a.workdir)
    os.makedirs(a.workdir, exist_ok=True)
    log("seed %d, %d s, workdir %s, binary %s" % (a.seed, a.duration, a.workdir, BIN))
    s = Soak(a)
    ok = False
    t0 = time.monotonic()
    def on_term(*_):  # once: a second SIGTERM must not cut the cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(3)
    signal.signal(signal.SIGTERM, on_term)
    faulthandler.register(signal.SIGUSR1)  # kill -USR1: every thread's stack
    try:
        s.run()
        ok = True
    except Failure as e:
        s.stats.d["lost"].append(str(e))
        log("FAILED: %s" % e)
    finally:
        for w in getattr(s, "workers", []):
            w.done.set()
            w.resume()
        rh.kill_all()
        s.stop_servers()
        s.stats.d["errors_logged"] = s.count_log("level=ERROR")
        summary = dict(s.stats.d, seed=a.seed, seconds=round(time.monotonic() - t0),
                       ok=ok, proxy_throttled=s.proxy.throttled if s.proxy else 0)
        with open(os.path.join(a.workdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(json.dumps(summary, indent=1))
        if tmp and ok and not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
