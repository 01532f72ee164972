"""A daemon stays up (DESIGN.md section 6): once the configuration is
accepted, no problem of one database or one replica stops `litesafe
replicate`, the other databases' replication or an -exec child. Each problem
is logged once (again only when it changes), retried, and replication starts
by itself as soon as the problem goes away:

  * a database that does not exist yet is waited for and never created;
  * a file that is not a database (empty, text, random bytes, a damaged
    header) or not in WAL mode is left exactly as it is;
  * a database deleted and created again under the replicator (the
    application's "reset") gets a new generation; the old one stays
    restorable with -generation;
  * an S3 bucket that does not exist yet, refused credentials, an unknown
    host and a TLS failure are logged with what is missing, and retried.
"""
import os
import signal
import sqlite3
import time
import urllib.parse

import pytest

import s3_server
from conftest import BIN, make_db, run
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, replicator, start_proc, write, digest, file_url, restore, wait_replicated,
    generations, write_s3_config, writer_argv)

SIBLINGS = ("-wal", "-shm", "-journal")


def settle(r, seconds=2.5):
    """Let a few monitor-intervals pass; the replicator must still run."""
    time.sleep(seconds)
    assert r.alive(), r.tail()


def count(r, pattern):
    import re
    return len(re.findall(pattern, r.text()))


def interrupt_twice(r):
    """SIGTERM asks for a final flush; a second one stops at once."""
    r.signal(signal.SIGTERM)
    time.sleep(0.5)
    r.signal(signal.SIGTERM)
    return r.wait(30)


# ---------------------------------------------------------------- databases

def test_missing_database_is_waited_for_and_never_created(tmp_path):
    db, url = tmp_path / "later.db", file_url(tmp_path / "rep")
    r = replicator(tmp_path, db, url, level="info")
    r.wait_log(r'database does not exist yet" db=%s' % db)
    settle(r)
    assert not db.exists() and not (tmp_path / "rep").exists()
    assert not any(os.path.exists(str(db) + s) for s in SIBLINGS)
    assert count(r, r"does not exist yet") == 1, r.tail()
    # The application creates its database after the replicator started.
    write(db, tmp_path / "progress", txns=20, seed=1)
    r.wait_log(r"snapshot written", timeout=60)
    wait_replicated(tmp_path, url, digest(db))
    assert r.stop() == 0, r.tail()


@pytest.mark.parametrize("kind", ["empty", "text", "random", "bad-header"])
def test_not_a_database_is_left_alone_until_it_becomes_one(tmp_path, kind):
    content = {"empty": b"", "text": b"garbage\n", "random": os.urandom(8192),
               "bad-header": b"SQLite format 3\0" + b"\xff" * 84}[kind]
    db, url = tmp_path / "x.db", file_url(tmp_path / "rep")
    db.write_bytes(content)
    mtime = db.stat().st_mtime_ns
    r = replicator(tmp_path, db, url, level="info")
    r.wait_log(r'cannot replicate" db=%s error=.*not a database' % db)
    settle(r)
    assert db.read_bytes() == content and db.stat().st_mtime_ns == mtime
    assert not any(os.path.exists(str(db) + s) for s in SIBLINGS)
    assert not (tmp_path / "rep").exists()
    assert count(r, r"cannot replicate") == 1, r.tail()
    # It becomes a database: SQLite writes into the empty file; the others
    # are replaced by the application.
    if kind != "empty":
        db.unlink()
    write(db, tmp_path / "progress", txns=10, seed=2)
    r.wait_log(r"snapshot written", timeout=60)
    wait_replicated(tmp_path, url, digest(db))
    assert r.stop() == 0, r.tail()


def test_database_not_in_wal_mode_is_left_alone_until_it_is(tmp_path):
    db, url = tmp_path / "rollback.db", file_url(tmp_path / "rep")
    make_db(db, rows=10, wal=False).close()
    before = db.read_bytes()
    r = replicator(tmp_path, db, url, level="info")
    r.wait_log(r'cannot replicate" db=%s error=.*not in WAL mode' % db)
    settle(r)
    assert db.read_bytes() == before
    assert not any(os.path.exists(str(db) + s) for s in SIBLINGS)
    con = sqlite3.connect(str(db))
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert count(r, r"cannot replicate") == 1, r.tail()
    # The application switches it to WAL and writes.
    assert con.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    con.execute("INSERT INTO t(v) VALUES ('after the switch')")
    con.commit()
    r.wait_log(r"snapshot written", timeout=60)
    wait_replicated(tmp_path, url, digest(db))
    con.close()
    assert r.stop() == 0, r.tail()


def test_one_broken_database_does_not_stop_the_others(tmp_path):
    good, missing, text = tmp_path / "good.db", tmp_path / "missing.db", tmp_path / "text.db"
    text.write_text("not a database\n")
    write(good, tmp_path / "progress", txns=10, seed=3)
    cfg = tmp_path / "ls.yml"
    cfg.write_text("dbs:\n" + "".join(
        "  - path: %s\n    replicas:\n      - url: %s\n" % (p, file_url(tmp_path / ("rep-" + p.name)))
        for p in (missing, text, good)))
    r = replicator(tmp_path, "-config", cfg, level="info")
    r.wait_log(r'snapshot written" db=%s' % good, timeout=60)
    write(good, tmp_path / "progress", txns=10, seed=4)
    wait_replicated(tmp_path, file_url(tmp_path / "rep-good.db"), digest(good))
    assert r.alive()
    assert 'does not exist yet" db=%s' % missing in r.text()
    assert 'cannot replicate" db=%s' % text in r.text()
    assert r.stop() == 0, r.tail()


def test_exec_child_keeps_running_while_a_database_and_a_replica_fail(tmp_path, servers):
    """-exec starts the application although its database does not exist yet
    and one replica's bucket is missing; the application creates the
    database, which reaches the working replica; the child runs until it is
    asked to stop, and litesafe exits with its status."""
    db = tmp_path / "app.db"
    cfg = write_s3_config(tmp_path / "ls.yml", db, servers, "stay-up/exec", name="s3",
                          bucket="no-such-bucket-%d" % os.getpid())
    with open(cfg, "a") as f:
        f.write("      - name: local\n        url: %s\n" % file_url(tmp_path / "local"))
    marker = tmp_path / "child-alive"
    app = " ".join(writer_argv(db, tmp_path / "progress", txns=10, seed=5))
    child = "sleep 1; %s && touch %s && exec sleep 600" % (app, marker)
    r = replicator(tmp_path, "-config", cfg, "-exec", child, level="info")
    r.wait_log(r'replica sync failed" .*no-such-bucket', timeout=60)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert r.alive() and time.monotonic() < deadline, r.tail()
        time.sleep(0.1)
    wait_replicated(tmp_path, file_url(tmp_path / "local"), digest(db))
    settle(r)
    # The child gets SIGTERM and ends; the S3 replica never held anything, so
    # the stop says so and exits 1 (a failed flush outranks the child's status).
    assert interrupt_twice(r) == 1, r.tail()
    assert "replica s3 of %s" % db in r.tail(3), r.tail()


@pytest.mark.parametrize("paused", [False, True], ids=["live", "paused"])
def test_database_deleted_and_created_again_starts_a_new_generation(tmp_path, paused):
    """paused: the replicator is stopped (SIGSTOP) while the application
    replaces the database and closes it, so that it finds a new file with no
    WAL left, which a snapshot covers without any commit to ship."""
    db, url = tmp_path / "app.db", file_url(tmp_path / "rep")
    write(db, tmp_path / "p1", txns=20, seed=6)
    r = replicator(tmp_path, db, url, level="info")
    r.wait_log(r"snapshot written", timeout=60)
    write(db, tmp_path / "p1", txns=10, seed=7)
    old = digest(db)
    wait_replicated(tmp_path, url, old)
    (first,) = [g["generation"] for g in generations(url)]
    # The application's reset: remove the database and its WAL, start anew.
    if paused:
        r.signal(signal.SIGSTOP)
    for s in ("", "-wal", "-shm"):
        if os.path.exists(str(db) + s):
            os.unlink(str(db) + s)
    write(db, tmp_path / "p2", txns=15, seed=8)
    if paused:
        r.signal(signal.SIGCONT)
    new = digest(db)
    assert new != old
    r.wait_log(r'database replaced" db=%s' % db, timeout=30)
    wait_replicated(tmp_path, url, new, what="the new database")
    # Caught up, no writer: no lag. The old generation's commits can never be
    # shipped now; they once kept status (and /healthz) at the age of the
    # oldest of them.
    deadline = time.monotonic() + 30
    while True:
        st = run("status", "--json", str(db))
        assert st.rc == 0, st
        (rep,) = [x for d in st.json["databases"] for x in d["replicas"]]
        if rep["lag_bytes"] == 0 and rep["lag_seconds"] == 0:
            break
        assert time.monotonic() < deadline, rep
        time.sleep(0.2)
    gens = generations(url)
    assert len(gens) == 2 and first in [g["generation"] for g in gens], gens
    out, _ = restore(tmp_path, url, "-generation", first)
    assert digest(out) == old
    assert r.stop() == 0, r.tail()


# ---------------------------------------------------------------- replicas

def s3_replicator(tmp_path, servers, db, **kw):
    cfg = write_s3_config(tmp_path / "ls.yml", db, servers,
                          "stay-up/%d-%d" % (os.getpid(), int(time.time() * 1000)), name="s3", **kw)
    return replicator(tmp_path, "-config", cfg, level="info")


def test_missing_bucket_is_retried_until_it_exists(tmp_path, servers):
    bucket = "later-%d-%d" % (os.getpid(), int(time.time()))
    db = tmp_path / "app.db"
    write(db, tmp_path / "progress", txns=10, seed=9)
    r = s3_replicator(tmp_path, servers, db, bucket=bucket)
    r.wait_log(r'replica sync failed" .*%s' % bucket, timeout=60)
    settle(r, 4)
    assert count(r, r"level=ERROR msg=\"replica sync failed\"") == 1, r.tail()
    port = int(servers["LS_TEST_S3_ENDPOINT"].rsplit(":", 1)[1])
    s3_server.signed_request(port, "PUT", "/" + bucket)
    r.wait_log(r"snapshot written", timeout=60)
    r.wait_log(r"replica recovered", timeout=10)
    assert r.stop() == 0, r.tail()


@pytest.mark.parametrize("problem", ["credentials", "unknown-host", "tls"])
def test_replica_problem_is_logged_once_and_never_stops_replicate(tmp_path, servers, problem):
    db = tmp_path / "app.db"
    write(db, tmp_path / "progress", txns=5, seed=10)
    endpoint = servers["LS_TEST_S3_ENDPOINT"]
    port = urllib.parse.urlsplit(endpoint).port
    kw, want = {}, servers["LS_TEST_S3_BUCKET"]
    if problem == "credentials":
        kw["secret"] = "not-the-secret"
    elif problem == "unknown-host":
        kw["extra"] = {"endpoint": "http://no-such-host.invalid:%d" % port}
        want = "no-such-host.invalid"
    else:
        kw["extra"] = {"endpoint": "https://127.0.0.1:%d" % port}
    cfg = write_s3_config(tmp_path / "ls.yml", db, servers, "stay-up/problem", name="s3",
                          **{k: v for k, v in kw.items() if k != "extra"})
    if "extra" in kw:  # another endpoint
        text = open(cfg).read()
        text = text.replace("endpoint: %s" % endpoint, "endpoint: %s" % kw["extra"]["endpoint"])
        open(cfg, "w").write(text)
    r = replicator(tmp_path, "-config", cfg, level="info")
    r.wait_log(r"level=ERROR msg=\"replica sync failed\".*%s" % want, timeout=90)
    settle(r, 4)
    assert count(r, r"level=ERROR msg=\"replica sync failed\"") == 1, r.tail()
    assert "not-the-secret" not in r.text()
    # Nothing reached the replica: the stop says so, naming it, exit 1.
    assert interrupt_twice(r) == 1, r.tail()
    assert "replica s3 of %s" % db in r.tail(3), r.tail()
