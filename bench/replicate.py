#!/usr/bin/python3
"""Replication benchmark: litesafe against Litestream 0.3.13, side by side.

What it measures, each tool in turn within every round (rounds interleave the
tools, figures are medians over the rounds):
  throughput  a writer commits single-row transactions as fast as it can for
              --seconds; commits/s with no replicator, with litesafe, with
              Litestream (both replicating to a local file replica). Reported as
              the share of the writer's throughput each replicator leaves it.
  rss         the replicator's peak RSS (VmHWM) during that run.
  lag         a writer commits one row every ~20 ms; after each commit it
              waits for the next WAL segment to appear in the replica (the
              file is renamed into place after its fsync, so it is durable):
              commit-to-replica latency, p50 and p90.
  restore     a replica with a 200 MiB snapshot and many WAL segments over
              several WAL indexes (one written by litesafe, one by Litestream),
              restored by both tools.
  requests    (--target s3) requests the replicator sent and bytes it stored
              per 1000 commits of the throughput run (each commit is one 4 KiB
              WAL frame), from s3rver's request log and its data directory;
              the same as requests per hour of continuous writing.
  isolated    (--target s3) a commit every --isolated-gap seconds (longer
              than Litestream's 1 s sync interval, so each one comes after a
              quiet spell): commit-to-S3 latency, p50 and p90.
  idle        (--target s3) requests per hour while the database is idle
              (--idle seconds with no commit, after the runs above).

--target file replicates to a local directory; --target s3 to a private
s3rver on 127.0.0.1 (tests/servers/s3_server.py), both tools reading one
Litestream-style config. Lag on S3 is measured to the moment s3rver has
stored the object (its metadata file, written after the body).

--addr HOST:PORT gives litesafe's config `addr:` (its metrics and health
listener) and scrapes its /metrics once a second while it runs, as Prometheus
would: the RSS with the listener on (litesafe then reads a config file for
--target file too).

Usage: bench/replicate.py [--target file|s3] [--litesafe build/litesafe] [--rounds 3]
                          [--seconds 8] [--addr 127.0.0.1:9099]
The machine is shared and noisy: compare the ratios, not absolute numbers.
"""
import argparse
import glob
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LITESTREAM = os.path.join(ROOT, "tests/tools/node_modules/@flydotio/litestream-linux-x64/litestream")
sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))
S3 = None  # the s3rver info when --target s3
ADDR = None  # --addr: litesafe's metrics listener


def replica_url(rep):
    """How both tools name the replica `rep` (a directory; for S3, the key
    prefix is its path relative to the work directory)."""
    return "file://" + rep


def s3_config(db, rep, top=""):
    env = S3["env"]
    cfg = rep + ".yml"
    with open(cfg, "w") as f:
        f.write(top + "dbs:\n  - path: %s\n    replicas:\n      - type: s3\n        bucket: %s\n"
                "        path: %s\n        endpoint: %s\n        region: %s\n"
                "        force-path-style: true\n        access-key-id: %s\n"
                "        secret-access-key: %s\n"
                % (db, env["LS_TEST_S3_BUCKET"], s3_prefix(rep), env["LS_TEST_S3_ENDPOINT"],
                   env["LS_TEST_S3_REGION"], env["LS_TEST_S3_ACCESS_KEY"],
                   env["LS_TEST_S3_SECRET_KEY"]))
    return cfg


def s3_prefix(rep):
    return "bench" + rep.replace("/", "-")


def s3_dir(rep):
    return os.path.join(S3["workdir"], "data", S3["env"]["LS_TEST_S3_BUCKET"], s3_prefix(rep))


def s3_requests():
    """Requests s3rver logged so far, by method. Started with quiet=False it
    logs one line per response, colored (s3_server sets FORCE_COLOR; see
    there): without the colors, `info: PUT /litesafe-test/KEY 200 8ms 0b`."""
    import re
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    request = re.compile(r"info: (PUT|GET|POST|DELETE|HEAD) /")
    n = {}
    with open(S3["log"], errors="replace") as f:
        for line in f:
            m = request.match(ansi.sub("", line))
            if m:
                n[m.group(1)] = n.get(m.group(1), 0) + 1
    return n


def new_db(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    db.close()


def file_config(db, rep, top):
    cfg = rep + ".yml"
    with open(cfg, "w") as f:
        f.write("%sdbs:\n  - path: %s\n    replicas:\n      - url: %s\n"
                % (top, db, replica_url(rep)))
    return cfg


def scrape_while(p):
    """GET /metrics and /healthz once a second until p exits."""
    def loop():
        while p.poll() is None:
            for path in ("/metrics", "/healthz"):
                try:
                    urllib.request.urlopen("http://%s%s" % (ADDR, path), timeout=5).read()
                except OSError:
                    pass
            time.sleep(1.0)
    threading.Thread(target=loop, daemon=True).start()


def start(tool, binary, db, rep):
    if tool == "none":
        return None
    top = "addr: \"%s\"\n" % ADDR if ADDR and tool == "litesafe" else ""
    if S3:
        args = [binary, "replicate", "-config", s3_config(db, rep, top)]
    elif top:
        args = [binary, "replicate", "-config", file_config(db, rep, top)]
    else:
        args = [binary, "replicate", db, replica_url(rep)]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if top:
        scrape_while(p)
    time.sleep(1.0)
    return p


def peak_rss_kib(p):
    try:
        with open("/proc/%d/status" % p.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stop(p):
    if p is None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def writer_rate(db, seconds):
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA synchronous=NORMAL")
    c.execute("PRAGMA busy_timeout=5000")
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        c.execute("INSERT INTO t(v) VALUES('x')")
        n += 1
    c.close()
    return n / seconds


def segments(rep):
    if S3:
        return set(glob.glob(os.path.join(s3_dir(rep), "generations", "*", "wal",
                                          "*.wal.lz4._S3rver_metadata.json")))
    return set(glob.glob(os.path.join(rep, "generations", "*", "wal", "*.wal.lz4")))


def stored_bytes(rep):
    """Bytes the replica holds (compressed objects)."""
    if S3:
        files = glob.glob(os.path.join(s3_dir(rep), "**", "*._S3rver_object"), recursive=True)
    else:
        files = glob.glob(os.path.join(rep, "**", "*.lz4"), recursive=True)
    return sum(os.path.getsize(f) for f in files)


def lags(db, rep, samples, timeout=5.0, gap=0.02):
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA busy_timeout=5000")
    out = []
    seen = segments(rep)
    for _ in range(samples):
        c.execute("INSERT INTO t(v) VALUES('lag')")
        t0 = time.monotonic()
        while True:
            now = segments(rep)
            if now - seen:
                out.append((time.monotonic() - t0) * 1000.0)
                seen = now
                break
            if time.monotonic() - t0 > timeout:
                break
            time.sleep(0.0002)
        time.sleep(gap)
    c.close()
    return out


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")


def make_replica(tool, binary, work, txns, mb):
    """A replica with a large snapshot and many WAL segments over several WAL
    indexes, written by `tool`: `mb` MiB of rows first, then `txns` update
    transactions spread over the whole database."""
    db, rep = os.path.join(work, tool + "-src.db"), os.path.join(work, tool + "-rep")
    new_db(db)
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA busy_timeout=5000")
    rows = mb * 1024
    c.execute("BEGIN")
    for _ in range(rows):
        c.execute("INSERT INTO t(v) VALUES(hex(randomblob(500)))")
    c.execute("COMMIT")
    p = start(tool, binary, db, rep)
    for i in range(txns):
        c.execute("BEGIN")
        for _ in range(4):
            c.execute("UPDATE t SET v = hex(randomblob(500)) WHERE id = ?",
                      (1 + (i * 7919 + _ * 104729) % rows,))
        c.execute("COMMIT")
        if i % 50 == 0:
            time.sleep(0.02 if tool == "litesafe" else 0)
        if tool == "litestream" and i % 2000 == 1999:
            time.sleep(1.1)  # Litestream ships once a second
    c.close()
    time.sleep(2.5)
    stop(p)
    return db, rep


def time_restore(binary, db, rep, out):
    if os.path.exists(out):
        os.unlink(out)
    src = ["-config", rep + ".yml", db] if S3 else [replica_url(rep)]
    t0 = time.monotonic()
    r = subprocess.run([binary, "restore", "-o", out] + src,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit("restore failed: %s" % r.stderr)
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--litesafe", default=os.path.join(ROOT, "build/litesafe"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--lag-samples", type=int, default=150)
    ap.add_argument("--restore-txns", type=int, default=20000)
    ap.add_argument("--restore-mb", type=int, default=200)
    ap.add_argument("--target", choices=("file", "s3"), default="file")
    ap.add_argument("--addr", help="litesafe's metrics listener (scraped every second)")
    ap.add_argument("--isolated-samples", type=int, default=8)
    ap.add_argument("--isolated-gap", type=float, default=1.5)
    ap.add_argument("--idle", type=float, default=10.0)
    a = ap.parse_args()
    global S3, ADDR
    ADDR = a.addr
    if a.target == "s3":
        import s3_server
        S3 = s3_server.start(tempfile.mkdtemp(prefix="litesafe-bench-s3-"), quiet=False)
    tools = {"none": None, "litesafe": os.path.abspath(a.litesafe), "litestream": LITESTREAM}
    if not os.path.exists(LITESTREAM):
        raise SystemExit("Litestream not installed: run scripts/deps.sh")
    work = tempfile.mkdtemp(prefix="litesafe-bench-")
    rate = {t: [] for t in tools}
    rss = {t: [] for t in tools if t != "none"}
    lag = {t: [] for t in tools if t != "none"}
    sent = {t: [] for t in tools if t != "none"}  # (requests by method, bytes, commits)
    hourly = {t: [] for t in tools if t != "none"}  # requests/hour: (writing, idle)
    isolated = {t: [] for t in tools if t != "none"}
    try:
        for rnd in range(a.rounds):
            for tool, binary in tools.items():
                d = os.path.join(work, "r%d-%s" % (rnd, tool))
                os.makedirs(d)
                db, rep = os.path.join(d, "db"), os.path.join(d, "rep")
                new_db(db)
                req0 = s3_requests() if S3 else {}
                p = start(tool, binary, db, rep)
                rate[tool].append(writer_rate(db, a.seconds))
                if p and S3:
                    time.sleep(2.0)  # Litestream ships once a second
                    req = s3_requests()
                    commits = rate[tool][-1] * a.seconds
                    sent[tool].append(({m: req.get(m, 0) - req0.get(m, 0) for m in req},
                                       stored_bytes(rep), commits))
                    writing = sum(req.values()) - sum(req0.values())
                if p:
                    lag[tool] += lags(db, rep, a.lag_samples if tool == "litesafe" else
                                      max(10, a.lag_samples // 10))
                if p and S3:
                    time.sleep(a.isolated_gap)
                    isolated[tool] += lags(db, rep, a.isolated_samples, gap=a.isolated_gap)
                    time.sleep(2.0)
                    before = sum(s3_requests().values())
                    time.sleep(a.idle)
                    idle = sum(s3_requests().values()) - before
                    hourly[tool].append((writing * 3600.0 / (a.seconds + 2.0),
                                         idle * 3600.0 / a.idle))
                if p:
                    rss[tool].append(peak_rss_kib(p))
                stop(p)
                shutil.rmtree(d)
            print("round %d: %s" % (rnd + 1, ", ".join("%s %.0f/s" % (t, rate[t][-1])
                                                         for t in tools)), file=sys.stderr)
        # Restore: the same replica, restored by both tools.
        restore = {}
        for writer in ("litesafe", "litestream"):
            db, rep = make_replica(writer, tools[writer], work, a.restore_txns, a.restore_mb)
            nseg = len(segments(rep))
            for reader in ("litesafe", "litestream"):
                ts = [time_restore(tools[reader], db, rep, os.path.join(work, "out.db"))
                      for _ in range(a.rounds)]
                restore[(writer, reader)] = (statistics.median(ts), nseg)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if S3:
            s3_server.stop(S3)
            shutil.rmtree(S3["workdir"], ignore_errors=True)

    base = statistics.median(rate["none"])
    print("\n| measure | no replicator | litesafe | Litestream 0.3.13 |")
    print("|---|---|---|---|")
    print("| writer commits/s (median of %d) | %.0f | %.0f | %.0f |" % (
        a.rounds, base, statistics.median(rate["litesafe"]), statistics.median(rate["litestream"])))
    print("| writer keeps | 100%% | %.0f%% | %.0f%% |" % (
        100 * statistics.median(rate["litesafe"]) / base,
        100 * statistics.median(rate["litestream"]) / base))
    print("| lag commit->replica p50 | | %.1f ms | %.0f ms |" % (
        pct(lag["litesafe"], 0.5), pct(lag["litestream"], 0.5)))
    print("| lag p90 | | %.1f ms | %.0f ms |" % (pct(lag["litesafe"], 0.9),
                                                 pct(lag["litestream"], 0.9)))
    print("| replicator peak RSS (median) | | %.1f MiB | %.1f MiB |" % (
        statistics.median(rss["litesafe"]) / 1024, statistics.median(rss["litestream"]) / 1024))
    if S3:
        # Each commit of the throughput run writes one 4 KiB page frame to the WAL.
        print("\n| per 1000 commits of the throughput run (median) | litesafe | "
              "Litestream 0.3.13 |")
        print("|---|---|---|")
        for what in ("requests", "PUT", "GET", "POST", "DELETE", "HEAD", "KiB stored"):
            row = []
            for tool in ("litesafe", "litestream"):
                v = []
                for req, stored, commits in sent[tool]:
                    x = (sum(req.values()) if what == "requests" else
                         stored / 1024.0 if what == "KiB stored" else req.get(what, 0))
                    v.append(1000.0 * x / commits)
                row.append(statistics.median(v) if v else float("nan"))
            print("| %s | %.3f | %.3f |" % (what, row[0], row[1]))
        print("\n| S3, median of %d rounds | litesafe | Litestream 0.3.13 |" % a.rounds)
        print("|---|---|---|")
        for i, what in enumerate(("requests per hour, continuous writer",
                                  "requests per hour, idle database")):
            print("| %s | %.0f | %.0f |" % (what, statistics.median(h[i] for h in hourly["litesafe"]),
                                           statistics.median(h[i] for h in hourly["litestream"])))
        print("| isolated commit -> S3 lag p50 | %.0f ms | %.0f ms |" % (
            pct(isolated["litesafe"], 0.5), pct(isolated["litestream"], 0.5)))
        print("| isolated commit -> S3 lag p90 | %.0f ms | %.0f ms |" % (
            pct(isolated["litesafe"], 0.9), pct(isolated["litestream"], 0.9)))
    print("\n| replica written by | segments | litesafe restore | Litestream restore | "
          "Litestream / litesafe |")
    print("|---|---|---|---|---|")
    for writer in ("litesafe", "litestream"):
        ls_t, n = restore[(writer, "litesafe")]
        lt_t, _ = restore[(writer, "litestream")]
        print("| %s | %d | %.3f s | %.3f s | %.1fx |" % (writer, n, ls_t, lt_t, lt_t / ls_t))


if __name__ == "__main__":
    main()
