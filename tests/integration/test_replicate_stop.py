"""A clean stop flushes (DESIGN.md section 6): after SIGTERM, every
transaction committed before the signal reaches every replica that can be
reached, through transient failures, within shutdown-timeout; exit 0 only
then. Otherwise exit 1 naming each replica, what it holds and what it lacks.
A second signal stops at once.

The S3 server sits behind a proxy that can answer every request with 429
SlowDown (a throttled bucket), the real server staying untouched.
"""
import os
import signal
import time

import pytest

from throttle_proxy import ThrottleProxy
from conftest import run
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, replicator, write, digest, restore_cfg, write_s3_config, file_url)


@pytest.fixture
def proxy(servers):
    p = ThrottleProxy(servers["LS_TEST_S3_ENDPOINT"]).start()
    yield p
    p.stop()


def start_replicating(tmp_path, servers, proxy, shutdown_timeout=None):
    """A database replicated to S3 through the proxy; returns (db, replicator, direct cfg)."""
    db = str(tmp_path / "app.db")
    prefix = "stop/%d-%d" % (os.getpid(), int(time.time() * 1000))
    via = write_s3_config(tmp_path / "via-proxy.yml", db,
                          dict(servers, LS_TEST_S3_ENDPOINT=proxy.url), prefix, name="s3")
    if shutdown_timeout is not None:
        with open(via) as f:
            text = f.read()
        with open(via, "w") as f:
            f.write("shutdown-timeout: %s\n" % shutdown_timeout + text)
    direct = write_s3_config(tmp_path / "direct.yml", db, servers, prefix, name="s3")
    write(db, tmp_path / "progress", txns=10, seed=1)
    r = replicator(tmp_path, "-config", via, level="info")
    r.wait_log(r"snapshot written", timeout=60)
    return db, r, direct


def commit_while_throttled(tmp_path, db, proxy):
    proxy.throttle = True
    write(db, tmp_path / "progress", txns=10, seed=2)
    time.sleep(0.3)  # the replica has tried, and been refused
    return digest(db)


def test_stop_during_throttling_ships_every_commit(tmp_path, servers, proxy):
    db, r, direct = start_replicating(tmp_path, servers, proxy)
    want = commit_while_throttled(tmp_path, db, proxy)
    r.signal(signal.SIGTERM)
    time.sleep(3)
    assert r.alive(), "gave up flushing while throttled:\n" + r.tail()
    proxy.throttle = False  # the bucket accepts requests again
    assert r.wait(60) == 0, r.tail()
    assert proxy.throttled > 2, proxy.throttled
    out, _ = restore_cfg("litesafe", tmp_path, direct, db)
    assert digest(out) == want


def test_stop_past_the_shutdown_timeout_names_what_is_missing(tmp_path, servers, proxy):
    db, r, direct = start_replicating(tmp_path, servers, proxy, shutdown_timeout="2s")
    commit_while_throttled(tmp_path, db, proxy)
    t0 = time.monotonic()
    r.signal(signal.SIGTERM)
    assert r.wait(60) == 1, r.tail()
    assert time.monotonic() - t0 >= 1.5
    last = r.tail(3)
    assert "litesafe: replicate: replica s3 of %s holds " % db in last, last
    assert "shutdown-timeout 2s" in last, last
    assert "not flushed at shutdown" in r.text() and "SlowDown" in r.text(), r.tail()


def test_second_signal_stops_at_once(tmp_path, servers, proxy):
    db, r, direct = start_replicating(tmp_path, servers, proxy)  # shutdown-timeout 30 s by default
    commit_while_throttled(tmp_path, db, proxy)
    r.signal(signal.SIGTERM)
    time.sleep(1)
    assert r.alive(), r.tail()
    t0 = time.monotonic()
    r.signal(signal.SIGINT)
    assert r.wait(30) == 1, r.tail()
    assert time.monotonic() - t0 < 10, r.tail()
    assert "replica s3 of %s holds " % db in r.tail(3), r.tail()


def test_nothing_pending_stops_at_once_even_when_a_replica_is_away(tmp_path, servers, proxy):
    """Everything committed is on both replicas: the stop has nothing to wait
    for, even though the S3 bucket now refuses every request."""
    db, r, direct = start_replicating(tmp_path, servers, proxy)
    want = digest(db)
    deadline = time.monotonic() + 30
    while True:
        out, res = restore_cfg("litesafe", tmp_path, direct, db, expect_ok=False)
        if res.rc == 0 and digest(out) == want:
            break
        assert time.monotonic() < deadline, res
        time.sleep(0.3)
    proxy.throttle = True
    t0 = time.monotonic()
    assert r.stop(timeout=30) == 0, r.tail()
    assert time.monotonic() - t0 < 10
