"""`litesafe replicate` with `addr:`: the metrics and health listener.

  * /metrics is Prometheus text format 0.0.4, read here by prometheus_client's
    own parser (Debian's python3-prometheus-client): Litestream 0.3.13's
    families with their types and labels, litesafe's own per replica, build
    info; the counters move when the application writes;
  * only GET and HEAD of /metrics and /healthz are served (405, 404);
  * ":PORT" binds loopback; an address in use stops replicate at once (exit 1,
    nothing replicated), an address that does not parse is exit 2;
  * an S3 replica whose server is killed: its lag (seconds and bytes) grows,
    failed requests are counted, /healthz turns 503 naming it once the lag
    passes health-max-lag; after the server returns, the lag falls back to
    about 0 and /healthz is 200 again;
  * a database that is not attached fails /healthz once the daemon has run
    for health-max-lag, and passes again once it exists.
"""
import json
import os
import signal
import socket
import sqlite3
import time
import urllib.error
import urllib.request

import pytest
import s3_server
from prometheus_client.parser import text_string_to_metric_families

from conftest import BIN, run
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, replicator, start_writer, write_s3_config, file_url, write_config)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(port, path, method="GET", host="127.0.0.1", data=None):
    """(status, headers, body text) of one request."""
    req = urllib.request.Request("http://%s:%d%s" % (host, port, path), method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def wait_http(port, rep, path="/healthz", timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http(port, path)
        except (urllib.error.URLError, ConnectionError):
            assert rep.alive(), "replicate exited:\n" + rep.tail()
            assert time.monotonic() < deadline, "no listener:\n" + rep.tail()
            time.sleep(0.1)


def scrape(port):
    """{family name: family} of /metrics, parsed by prometheus_client."""
    st, hdr, body = http(port, "/metrics")
    assert st == 200, body
    assert hdr["Content-Type"].startswith("text/plain; version=0.0.4"), hdr["Content-Type"]
    return {f.name: f for f in text_string_to_metric_families(body)}


def value(fams, family, sample=None, **labels):
    """The value of the one sample of `family` whose labels include `labels`."""
    sample = sample or family
    got = [s.value for s in fams[family].samples
           if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(got) == 1, "%s%s: %r in %r" % (sample, labels, got, fams[family].samples)
    return got[0]


def add_top(cfg, text):
    """Put top-level keys before the dbs: of a written config."""
    with open(cfg) as f:
        body = f.read()
    with open(cfg, "w") as f:
        f.write(text + body)


def make_wal_db(path):
    c = sqlite3.connect(str(path))
    c.execute("PRAGMA journal_mode=wal")
    c.execute("CREATE TABLE IF NOT EXISTS t(x)")
    c.commit()
    return c


def serving(tmp_path, top=""):
    """app.db replicated to a file replica by replicate with its listener on a
    free loopback port, once it has its first snapshot: (db, port, rep)."""
    db = tmp_path / "app.db"
    make_wal_db(db).close()
    port = free_port()
    cfg = write_config(tmp_path / "ls.yml", db, tmp_path / "rep")
    add_top(cfg, "addr: 127.0.0.1:%d\n%s" % (port, top))
    rep = replicator(tmp_path, "-config", cfg)
    wait_http(port, rep)
    rep.wait_log("snapshot written")
    return db, port, rep


# Litestream 0.3.13's families (name as the parser gives it: counters lose
# "_total") with their type and labels.
LITESTREAM = {
    "litestream_db_size": ("gauge", {"db"}),
    "litestream_wal_size": ("gauge", {"db"}),
    "litestream_total_wal_bytes": ("counter", {"db"}),
    "litestream_shadow_wal_index": ("gauge", {"db"}),
    "litestream_shadow_wal_size": ("gauge", {"db"}),
    "litestream_replica_wal_bytes": ("counter", {"db", "name"}),
    "litestream_replica_wal_index": ("gauge", {"db", "name"}),
    "litestream_replica_wal_offset": ("gauge", {"db", "name"}),
    "litestream_replica_operation": ("counter", {"replica_type", "operation"}),
}
LITESAFE = {
    "litesafe_db_attached": ("gauge", {"db"}),
    "litesafe_spool_bytes": ("gauge", {"db"}),
    "litesafe_replica_lag_seconds": ("gauge", {"db", "name"}),
    "litesafe_replica_lag_bytes": ("gauge", {"db", "name"}),
    "litesafe_replica_last_sync_timestamp_seconds": ("gauge", {"db", "name"}),
    "litesafe_replica_last_error_timestamp_seconds": ("gauge", {"db", "name"}),
    "litesafe_replica_failing": ("gauge", {"db", "name"}),
    "litesafe_replica_restorable": ("gauge", {"db", "name"}),
    "litesafe_replica_upload_bytes": ("counter", {"db", "name"}),
    "litesafe_replica_uploads": ("counter", {"db", "name", "kind"}),
    "litesafe_replica_requests": ("counter", {"db", "name", "op"}),
    "litesafe_replica_request_errors": ("counter", {"db", "name", "class"}),
    "litesafe_replica_requests_per_second": ("gauge", {"db", "name"}),
    "litesafe_replica_next_snapshot_timestamp_seconds": ("gauge", {"db", "name"}),
    "litesafe_replica_next_retention_timestamp_seconds": ("gauge", {"db", "name"}),
    "litesafe_replica_spool_drops": ("counter", {"db", "name"}),
    "litesafe_build_info": ("gauge", {"version"}),
    "process_start_time_seconds": ("gauge", set()),
    "process_resident_memory_bytes": ("gauge", set()),
}


def test_metrics_scrape(tmp_path):
    db, port, rep = serving(tmp_path)
    conn = sqlite3.connect(str(db))

    fams = scrape(port)
    for name, (typ, labels) in {**LITESTREAM, **LITESAFE}.items():
        assert name in fams, "no family %s in %s" % (name, sorted(fams))
        assert fams[name].type == typ, (name, fams[name].type)
        assert fams[name].samples, name
        for s in fams[name].samples:
            assert set(s.labels) == labels, (name, s.labels)
    d = str(db)
    assert value(fams, "litestream_db_size", db=d) == os.path.getsize(db)
    assert value(fams, "litesafe_db_attached", db=d) == 1
    assert value(fams, "litesafe_replica_restorable", db=d, name="file") == 1
    assert value(fams, "litesafe_replica_uploads", "litesafe_replica_uploads_total",
                 db=d, name="file", kind="snapshot") >= 1
    ops = {s.labels["operation"] for s in fams["litestream_replica_operation"].samples}
    assert ops == {"PUT", "GET", "LIST", "DELETE"}
    version = run("version").out.split()[1]
    info = fams["litesafe_build_info"].samples[0]
    assert (info.labels["version"], info.value) == (version, 1)

    # A write moves the WAL counters and the replica's position.
    before = value(fams, "litestream_replica_wal_bytes", "litestream_replica_wal_bytes_total",
                   db=d, name="file")
    copied = value(fams, "litestream_total_wal_bytes", "litestream_total_wal_bytes_total", db=d)
    for i in range(50):
        conn.execute("INSERT INTO t VALUES(?)", (os.urandom(500),))
        conn.commit()
    deadline = time.monotonic() + 30
    while True:
        fams = scrape(port)
        after = value(fams, "litestream_replica_wal_bytes", "litestream_replica_wal_bytes_total",
                      db=d, name="file")
        # 50 commits: at least 50 frames of a 4 KiB page copied, then shipped
        total = value(fams, "litestream_total_wal_bytes", "litestream_total_wal_bytes_total",
                      db=d)
        if (total >= copied + 50 * 4096 and after > before and
                value(fams, "litesafe_replica_lag_bytes", db=d, name="file") == 0):
            break
        assert time.monotonic() < deadline, "the counters did not move"
        time.sleep(0.2)
    assert value(fams, "litesafe_replica_uploads", "litesafe_replica_uploads_total",
                 db=d, name="file", kind="segment") >= 1
    assert value(fams, "litesafe_replica_lag_seconds", db=d, name="file") == 0
    assert value(fams, "litesafe_replica_last_sync_timestamp_seconds", db=d,
                 name="file") > time.time() - 60
    assert value(fams, "litestream_replica_wal_offset", db=d, name="file") > 0

    # HEAD: the headers alone.
    st, hdr, body = http(port, "/metrics", method="HEAD")
    assert st == 200 and body == "" and int(hdr["Content-Length"]) > 0
    st, _, body = http(port, "/healthz")
    assert (st, body) == (200, "ok\n")
    conn.close()
    assert rep.stop() == 0, rep.tail()


def test_refuses_other_methods_and_paths(tmp_path):
    _, port, rep = serving(tmp_path)
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        for path in ("/metrics", "/healthz"):
            st, hdr, _ = http(port, path, method=method, data=b"x" * 100 if method != "DELETE"
                              else None)
            assert st == 405, (method, path, st)
            assert hdr["Allow"] == "GET, HEAD"
    for path in ("/", "/metrics/", "/health", "/debug/pprof/", "/metricsx", "/../metrics"):
        st, _, _ = http(port, path)
        assert st == 404, (path, st)
    # Still serving, and replicating.
    assert http(port, "/healthz")[0] == 200
    assert rep.alive()
    assert rep.stop() == 0, rep.tail()


def test_bind(tmp_path):
    db = tmp_path / "app.db"
    make_wal_db(db).close()
    cfg = write_config(tmp_path / "ls.yml", db, tmp_path / "rep")

    # ":PORT" binds loopback.
    port = free_port()
    add_top(cfg, "addr: :%d\n" % port)
    rep = replicator(tmp_path, "-config", cfg)
    assert wait_http(port, rep)[0] == 200
    rep.wait_log(r"serving metrics.* url=http://127\.0\.0\.1:%d/metrics" % port)

    # The same port again: exit 1 at once, before anything is replicated.
    db2 = tmp_path / "other.db"
    make_wal_db(db2).close()
    cfg2 = write_config(tmp_path / "ls2.yml", db2, tmp_path / "rep2")
    add_top(cfg2, "addr: 127.0.0.1:%d\n" % port)
    r = run("replicate", "-config", cfg2, timeout=30)
    assert r.rc == 1, r
    assert "metrics: listen on 127.0.0.1:%d: Address already in use" % port in r.err, r.err
    assert not os.path.exists(tmp_path / "rep2")
    assert rep.stop() == 0, rep.tail()

    # Addresses that do not parse are config errors.
    for bad in ("9090", "localhost", "127.0.0.1:", "::1:9090", "127.0.0.1:99999", "h:p"):
        with open(cfg2) as f:
            lines = f.read().splitlines()[1:]
        with open(cfg2, "w") as f:
            f.write("addr: \"%s\"\n" % bad + "\n".join(lines) + "\n")
        r = run("replicate", "-config", cfg2, timeout=30)
        assert r.rc == 2, (bad, r)
        assert "invalid addr '%s'" % bad in r.err, r.err
    assert not os.path.exists(tmp_path / "rep2")


def test_bind_ipv6(tmp_path):
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    db = tmp_path / "app.db"
    make_wal_db(db).close()
    port = free_port()
    cfg = write_config(tmp_path / "ls.yml", db, tmp_path / "rep")
    add_top(cfg, "addr: \"[::1]:%d\"\n" % port)
    rep = replicator(tmp_path, "-config", cfg)
    rep.wait_log(r"url=http://\[::1\]:%d/metrics" % port)
    assert http(port, "/healthz", host="[::1]")[0] == 200
    assert rep.stop() == 0, rep.tail()


def test_lag_and_health_through_an_outage(tmp_path):
    srv = s3_server.start(str(tmp_path / "s3"))
    try:
        db = str(tmp_path / "app.db")
        make_wal_db(db).close()
        port = free_port()
        cfg = write_s3_config(tmp_path / "ls.yml", db, srv["env"], "metrics/app", name="s3")
        add_top(cfg, "addr: 127.0.0.1:%d\nhealth-max-lag: 2s\n" % port)
        rep = replicator(tmp_path, "-config", cfg)
        stop_file = str(tmp_path / "stop")
        start_writer(tmp_path, db, str(tmp_path / "progress"), stop_file=stop_file, sleep=0.05,
                     payload="100:1000", seed=3)
        wait_http(port, rep)

        def lag():
            fams = scrape(port)
            return (value(fams, "litesafe_replica_lag_seconds", db=db, name="s3"),
                    value(fams, "litesafe_replica_lag_bytes", db=db, name="s3"), fams)

        def wait_for(cond, what, timeout=60):
            deadline = time.monotonic() + timeout
            while True:
                got = cond()
                if got:
                    return got
                assert rep.alive(), "replicate exited:\n" + rep.tail()
                assert time.monotonic() < deadline, "%s: timed out\n%s" % (what, rep.tail())
                time.sleep(0.2)

        # Up: shipping, lag about 0, healthy.
        wait_for(lambda: lag()[0] < 1 and http(port, "/healthz")[0] == 200, "healthy at start")

        # Down: the lag grows past health-max-lag, /healthz says which replica.
        for pid in srv["pids"]:
            os.killpg(pid, signal.SIGKILL)
        s3_server.stop(srv)

        # Failing from the first failed request, not only once the retries
        # inside one step run out (that takes up to 11 s).
        def net_errors():
            fams = scrape(port)
            errs = [s.value for s in fams["litesafe_replica_request_errors"].samples
                    if s.labels["class"] == "net"]
            return fams if errs and errs[0] > 0 else None
        fams = wait_for(net_errors, "a failed request")
        assert value(fams, "litesafe_replica_failing", db=db, name="s3") == 1
        assert value(fams, "litesafe_replica_last_error_timestamp_seconds", db=db,
                     name="s3") > time.time() - 30
        wait_for(lambda: lag()[0] > 3, "lag above 3s with the server down")
        s1, b1, _ = lag()
        time.sleep(1.5)
        s2, b2, fams = lag()
        assert s2 > s1 and b2 >= b1 > 0, (s1, s2, b1, b2)
        errs = [s.value for s in fams["litesafe_replica_request_errors"].samples
                if s.labels["class"] == "net"]
        assert errs and errs[0] > 0, fams["litesafe_replica_request_errors"].samples
        assert value(fams, "litesafe_replica_failing", db=db, name="s3") == 1
        st, _, body = http(port, "/healthz")
        assert st == 503, body
        assert "db=%s replica=s3 lag=" % db in body and "last_error=" in body, body

        # Back: caught up by itself, lag about 0, healthy again.
        srv = s3_server.start(str(tmp_path / "s3"), port=srv["port"])
        wait_for(lambda: lag()[0] < 1, "lag back under 1s", timeout=90)
        wait_for(lambda: http(port, "/healthz")[0] == 200, "healthy again")
        fams = scrape(port)
        assert value(fams, "litesafe_replica_failing", db=db, name="s3") == 0
        assert value(fams, "litesafe_replica_last_sync_timestamp_seconds", db=db,
                     name="s3") > time.time() - 30
        open(stop_file, "w").close()
        assert rep.stop() == 0, rep.tail()
    finally:
        s3_server.stop(srv)


def test_failing_from_the_first_failed_request(tmp_path):
    """A replica whose server is away shows failing (and its error) from the
    first failed request: a step goes on retrying for up to 11 s before it
    gives up, and an operator must not see a healthy-looking replica then."""
    db = str(tmp_path / "app.db")
    make_wal_db(db).close()
    port = free_port()
    away = {"LS_TEST_S3_BUCKET": "bucket", "LS_TEST_S3_ENDPOINT": "http://127.0.0.1:%d" % free_port(),
            "LS_TEST_S3_REGION": "us-east-1", "LS_TEST_S3_ACCESS_KEY": "key",
            "LS_TEST_S3_SECRET_KEY": "secret"}
    cfg = write_s3_config(tmp_path / "ls.yml", db, away, "away/app", name="s3")
    add_top(cfg, "addr: 127.0.0.1:%d\nshutdown-timeout: 2s\nsocket:\n  path: %s\n"
            % (port, tmp_path / "ctl.sock"))
    rep = replicator(tmp_path, "-config", cfg)
    wait_http(port, rep, path="/metrics")
    deadline = time.monotonic() + 30
    while True:
        fams = scrape(port)
        errs = [s.value for s in fams["litesafe_replica_request_errors"].samples
                if s.labels["class"] == "net"]
        if errs and errs[0] > 0:
            break
        assert time.monotonic() < deadline, rep.tail()
        time.sleep(0.1)
    assert value(fams, "litesafe_replica_failing", db=db, name="s3") == 1
    assert value(fams, "litesafe_replica_last_error_timestamp_seconds", db=db,
                 name="s3") > time.time() - 30
    st = run("status", "-config", cfg, "--json")
    assert st.rc == 0, st.err
    rs = json.loads(st.out)["databases"][0]["replicas"][0]
    assert rs["last_error"] and "127.0.0.1" in rs["last_error"]["message"], rs
    assert rep.stop() == 1, rep.tail()  # nothing could be flushed
    assert "not flushed at shutdown" in rep.tail()


def test_health_not_attached(tmp_path):
    db = tmp_path / "later.db"
    port = free_port()
    cfg = write_config(tmp_path / "ls.yml", db, tmp_path / "rep")
    add_top(cfg, "addr: 127.0.0.1:%d\nhealth-max-lag: 1s\n" % port)
    rep = replicator(tmp_path, "-config", cfg)
    wait_http(port, rep)
    deadline = time.monotonic() + 30
    while True:
        st, _, body = http(port, "/healthz")
        if st == 503:
            break
        assert time.monotonic() < deadline, "still healthy without the database"
        time.sleep(0.2)
    assert "db=%s replica=file not attached" % db in body, body
    assert value(scrape(port), "litesafe_db_attached", db=str(db)) == 0

    make_wal_db(db).close()
    deadline = time.monotonic() + 60
    while http(port, "/healthz")[0] != 200:
        assert time.monotonic() < deadline, "not healthy after the database appeared\n" + rep.tail()
        time.sleep(0.2)
    assert rep.stop() == 0, rep.tail()


def test_slow_clients_do_not_hold_up_replication(tmp_path):
    """More stuck clients than the listener serves at once (16), each with a
    half-sent request: replication goes on, the listener closes them after
    its idle timeout (10 s) and serves again."""
    db, port, rep = serving(tmp_path)
    conn = sqlite3.connect(str(db))
    stuck = []
    for _ in range(24):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
        stuck.append(s)
    since = len(rep.text())
    for _ in range(20):
        conn.execute("INSERT INTO t VALUES(?)", (os.urandom(300),))
        conn.commit()
    rep.wait_log("segment put", since=since, timeout=30)
    for s in stuck:
        s.settimeout(30)
        try:
            assert s.recv(100) == b""  # closed by the listener, nothing answered
        except ConnectionResetError:
            pass
        s.close()
    assert http(port, "/healthz")[0] == 200
    conn.close()
    assert rep.stop() == 0, rep.tail()
