"""The control socket of `litesafe replicate`, `litesafe status` and
`litesafe sync` (issue 9), against the real binary:

  * `replicate DB URL` listens on control.sock in the database's meta
    directory, mode 0600, and removes it at exit; `status DB` and `sync DB`
    find it with no other argument;
  * status shows positions, lag in time and bytes, last upload, sizes and
    requests (text and --json); a failing replica shows its error with a
    time and a growing lag, and recovers;
  * `sync -wait` returns once the replica holds every commit made before
    it (a restore equals the database); it rides the cadence: under a long
    sync-interval it times out naming the replica (exit 1) unless -hurry;
    without -wait it returns once the spool has the commits;
  * socket.path and socket.permissions; a database not replicated there;
  * the protocol refuses what it does not know (bad JSON, unknown methods,
    over-long lines) and never dies of it; a stale socket left by kill -9
    is replaced; a second replicate of the same socket keeps running
    without one;
  * without a daemon, status says so, shows what the replicas hold and
    exits 1.
"""
import json
import os
import socket
import sqlite3
import stat
import time

from conftest import run, make_db
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, replicator, file_url, digest, restore, write_config)


def meta_sock(db):
    return os.path.join(os.path.dirname(str(db)), ".%s-litesafe" % os.path.basename(str(db)),
                        "control.sock")


def wait_for(path, timeout=20):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "no %s" % path
        time.sleep(0.05)


def insert(db, n=20):
    c = sqlite3.connect(str(db))
    c.execute("PRAGMA busy_timeout=5000")
    with c:
        for _ in range(n):
            c.execute("INSERT INTO t(v) VALUES (randomblob(300))")
    c.close()


def status_json(*args):
    r = run("--json", "status", *args)
    assert r.rc == 0, r
    return r.json


def ask(path, *lines, timeout=10):
    """Send raw lines on the socket; the answers, one JSON object per line."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    out = []
    buf = b""
    for line in lines:
        try:
            s.sendall(line if isinstance(line, bytes) else line.encode() + b"\n")
            while b"\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    s.close()
                    return out, True
                buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            s.close()
            return out, True
        first, buf = buf.split(b"\n", 1)
        out.append(json.loads(first))
    s.close()
    return out, False


def test_url_form_status_sync_and_socket_file(tmp_path):
    db = tmp_path / "app.db"
    make_db(db)
    url = file_url(tmp_path / "rep")
    r = replicator(tmp_path, db, url, level="info")
    sock = meta_sock(db)
    wait_for(sock)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    r.wait_log("snapshot written")

    insert(db)
    s = run("sync", "-wait", db)
    assert s.rc == 0, s
    out, res = restore(tmp_path, url)
    assert digest(out) == digest(db)

    st = status_json(db)
    assert st["running"] is True and st["socket"] == sock
    (d,) = st["databases"]
    assert d["path"] == str(db)
    assert d["db_size"] > 0 and d["spool_size"] > 0 and d["wal_bytes"] > 0
    (rep,) = d["replicas"]
    assert rep["name"] == "file" and rep["type"] == "file"
    assert (rep["generation"], rep["index"], rep["offset"]) == (
        d["generation"], d["index"], d["offset"])
    assert rep["lag_bytes"] == 0 and rep["lag_seconds"] == 0
    assert rep["restorable"] and rep["attached"] and rep["last_error"] is None
    assert rep["last_upload"].endswith("Z")
    assert rep["requests"]["put"] >= 2 and rep["requests_per_second"] > 0

    text = run("status", db)
    assert text.rc == 0, text
    assert str(db) in text.out and "lag_bytes" in text.out and "file" in text.out

    info, closed = ask(sock, '{"jsonrpc":"2.0","id":7,"method":"info"}')
    assert info[0]["id"] == 7 and info[0]["result"]["pid"] == r.pid

    assert r.stop(60) == 0
    assert not os.path.exists(sock), "the socket file stays after the exit"


def test_sync_rides_the_cadence_and_hurry_ships(tmp_path):
    db = tmp_path / "app.db"
    make_db(db)
    cfg = tmp_path / "litesafe.yml"
    sock = str(tmp_path / "run" / "ctl.sock")
    write_config(cfg, db, tmp_path / "rep", replica_keys={"sync-interval": "60s"})
    with open(cfg, "a") as f:
        f.write("socket:\n  path: %s\n  permissions: \"0660\"\n" % sock)
    r = replicator(tmp_path, "-config", cfg, level="info")
    wait_for(sock)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
    assert run("sync", "-config", cfg, "-wait", "-hurry", db).rc == 0
    insert(db)

    # Without -wait: the spool has it; the replica waits for its interval.
    s = run("sync", "-config", cfg, db)
    assert s.rc == 0 and "spooled" in s.out, s
    d = status_json("-config", cfg, db)["databases"][0]
    assert d["replicas"][0]["lag_bytes"] > 0

    # -wait rides the 60 s cadence: a 1 s timeout names what is missing.
    s = run("sync", "-config", cfg, "-wait", "-timeout", "1s", db)
    assert s.rc == 1, s
    assert "replica file" in s.err and "holds" in s.err, s.err
    assert r.alive()

    # -hurry ships now.
    s = run("--json", "sync", "-config", cfg, "-wait", "-hurry", "-timeout", "20s", db)
    assert s.rc == 0, s
    (rep,) = s.json["replicas"]
    d = status_json("-socket", sock)["databases"][0]
    assert (rep["index"], rep["offset"]) == (d["index"], d["offset"])
    assert d["replicas"][0]["lag_bytes"] == 0

    # A database this replicate does not have.
    other = run("status", "-socket", sock, tmp_path / "other.db")
    assert other.rc == 1 and "not a database of this replicate" in other.err, other
    assert run("sync", "-socket", sock, "-timeout", "x", db).rc == 2
    assert r.stop(60) == 0


def test_failing_replica_shows_error_and_lag_then_recovers(tmp_path):
    db = tmp_path / "app.db"
    make_db(db)
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the replica's directory should be")
    url = file_url(blocker / "rep")
    r = replicator(tmp_path, db, url, level="info")
    r.wait_log("replica sync failed")
    insert(db)
    time.sleep(1.2)
    rep = status_json(db)["databases"][0]["replicas"][0]
    assert rep["last_error"] and rep["last_error"]["time"].endswith("Z")
    assert rep["lag_seconds"] >= 1.0 and rep["lag_bytes"] > 0
    assert rep["restorable"] is False
    s = run("sync", "-wait", "-timeout", "1s", db)
    assert s.rc == 1 and "replica file" in s.err, s

    blocker.unlink()
    assert run("sync", "-wait", "-hurry", "-timeout", "60s", db).rc == 0
    rep = status_json(db)["databases"][0]["replicas"][0]
    assert rep["last_error"] is None and rep["lag_bytes"] == 0
    assert rep["errors"]["other"] + rep["errors"]["net"] > 0  # the failures were counted
    assert r.stop(60) == 0


def test_protocol_refuses_what_it_does_not_know(tmp_path):
    db = tmp_path / "app.db"
    make_db(db)
    r = replicator(tmp_path, db, file_url(tmp_path / "rep"), level="info")
    sock = meta_sock(db)
    wait_for(sock)
    out, _ = ask(sock, "this is not json", '{"jsonrpc":"2.0","id":1,"method":"drop"}',
                 '{"id":2,"method":"status","params":[]}',
                 '{"id":3,"method":"sync","params":{"timeout_ms":"soon"}}',
                 '{"id":4,"method":"list"}')
    assert out[0]["error"]["code"] == -32700
    assert out[1]["error"]["code"] == -32601 and out[1]["id"] == 1
    assert out[2]["error"]["code"] == -32600
    assert out[3]["error"]["code"] == -32602
    assert out[4]["result"]["databases"][0]["replicas"] == [{"name": "file", "type": "file"}]
    # A NUL inside a line: that line is one request, and not JSON (the part
    # after the NUL is not answered as a request of its own).
    out, _ = ask(sock, b'{"id":5,"method":"info"}\0{"id":6,"method":"info"}\n',
                 '{"id":7,"method":"info"}')
    assert out[0]["error"]["code"] == -32700 and out[0]["id"] is None
    assert out[1]["id"] == 7 and "version" in out[1]["result"]
    # A line over 64 KiB ends the connection, not the daemon.
    out, closed = ask(sock, b"[" + b"1," * 40000 + b"1]\n")
    assert closed and out == []
    assert status_json(db)["running"] is True and r.alive()
    assert r.stop(60) == 0


def test_stale_socket_replaced_and_second_daemon_stays_up(tmp_path):
    db = tmp_path / "app.db"
    make_db(db)
    url = file_url(tmp_path / "rep")
    r = replicator(tmp_path, db, url, level="info")
    sock = meta_sock(db)
    wait_for(sock)
    r.kill9()
    assert os.path.exists(sock)  # left behind by the kill
    r2 = replicator(tmp_path, db, url, level="info")
    r2.wait_log("control socket listening")
    assert status_json(db)["running"] is True

    # Another replicate on the same socket (here a second URL form of the same
    # database: its spool lock also keeps it from replicating) stays up.
    cfg = tmp_path / "second.yml"
    other = tmp_path / "other.db"
    make_db(other)
    write_config(cfg, other, tmp_path / "rep2")
    with open(cfg, "a") as f:
        f.write("socket:\n  path: %s\n" % sock)
    r3 = replicator(tmp_path, "-config", cfg, level="info")
    r3.wait_log("control socket not available")
    time.sleep(1)
    assert r3.alive() and r2.alive()
    assert status_json(db)["databases"][0]["path"] == str(db)  # still r2's
    assert r3.stop(60) == 0
    assert os.path.exists(sock), "the second replicate removed the first one's socket"
    assert r2.stop(60) == 0


def test_status_without_daemon_shows_the_replicas(tmp_path):
    db = tmp_path / "app.db"
    make_db(db)
    cfg = tmp_path / "litesafe.yml"
    write_config(cfg, db, tmp_path / "rep")
    with open(cfg, "a") as f:
        f.write("socket:\n  path: %s\n" % (tmp_path / "ctl.sock"))
    r = replicator(tmp_path, "-config", cfg, level="info")
    r.wait_log("snapshot written")
    assert run("sync", "-config", cfg, "-wait", db).rc == 0
    pos = status_json("-config", cfg)["databases"][0]
    assert r.stop(60) == 0

    s = run("status", "-config", cfg)
    assert s.rc == 1, s
    assert "no litesafe replicate listens" in s.err
    assert pos["generation"] + "/" in s.out, s.out  # the newest generation and segment
    j = run("--json", "status", "-config", cfg)
    assert j.rc == 1 and j.json["running"] is False
    assert j.json["replicas"][0]["replica"] == "file"

    s = run("status", tmp_path / "nowhere.db")
    assert s.rc == 1 and "no litesafe replicate listens" in s.err, s


def test_status_and_sync_follow_a_reload(tmp_path):
    import signal
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    make_db(a)
    make_db(b)
    sock = str(tmp_path / "ctl.sock")
    cfg = tmp_path / "litesafe.yml"

    def config(*dbs):
        lines = ["socket:", "  path: %s" % sock, "dbs:"]
        for db in dbs:
            lines += ["  - path: %s" % db, "    replicas:",
                      "      - url: %s" % file_url(tmp_path / ("rep-" + db.name))]
        cfg.write_text("\n".join(lines) + "\n")

    config(a)
    r = replicator(tmp_path, "-config", cfg, level="info")
    wait_for(sock)
    assert [d["path"] for d in status_json("-socket", sock)["databases"]] == [str(a)]
    config(a, b)
    r.signal(signal.SIGHUP)
    r.wait_log("reload")
    deadline = time.monotonic() + 30
    while len(status_json("-socket", sock)["databases"]) < 2:
        assert time.monotonic() < deadline, r.tail()
        time.sleep(0.1)
    insert(b)
    assert run("sync", "-socket", sock, "-wait", b).rc == 0
    out, _ = restore(tmp_path, file_url(tmp_path / "rep-b.db"))
    assert digest(out) == digest(b)
    assert r.stop(60) == 0
