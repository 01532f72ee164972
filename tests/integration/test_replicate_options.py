"""Replication options beyond shipping: validation-interval, age (refused until
supported), logging type json, addr (the metrics listener's start is logged)."""
import json
import signal
import socket
import sqlite3
import subprocess
import time

from conftest import BIN


def new_db(path):
    c = sqlite3.connect(str(path), isolation_level=None)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    c.close()


def config(tmp_path, replica_extra="", top_extra=""):
    db = tmp_path / "a.db"
    new_db(db)
    cfg = tmp_path / "c.yml"
    cfg.write_text("%sdbs:\n  - path: %s\n    replicas:\n      - url: file://%s\n%s" % (
        top_extra, db, tmp_path / "rep", replica_extra))
    return db, cfg


def test_validation_interval_logs_ok_in_json(tmp_path):
    """validation-interval restores the replica at the live position in the
    background and reports; with logging type json every line is an object."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    db, cfg = config(tmp_path, "        validation-interval: 500ms\n",
                     'addr: ":%d"\nlogging:\n  type: json\n' % port)
    p = subprocess.Popen([BIN, "replicate", "-config", str(cfg)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        c = sqlite3.connect(str(db), isolation_level=None)
        c.execute("PRAGMA busy_timeout=5000")
        for i in range(30):
            c.execute("INSERT INTO t(v) VALUES(?)", ("v%d" % i,))
            time.sleep(0.05)
        time.sleep(1.5)
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    lines = [json.loads(l) for l in err.splitlines() if l.strip()]
    assert all({"time", "level", "msg"} <= set(l) for l in lines)
    ok = [l for l in lines if l["msg"] == "validation ok"]
    assert ok and all(l["replica"] == "file" for l in ok), err
    assert not [l for l in lines if l["msg"] == "validation failed"], err
    assert any(l["msg"] == "serving metrics" and
               l["url"] == "http://127.0.0.1:%d/metrics" % port for l in lines), err


def test_age_bad_recipient_refused_not_ignored(tmp_path):
    """A replica configured for age encryption is never written in clear: a
    recipient that is not an age key is a config error (test_age.py covers
    encrypted replicas)."""
    db, cfg = config(tmp_path, "        age:\n          recipients: [age1qqq]\n")
    r = subprocess.run([BIN, "replicate", "-config", str(cfg)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r
    assert "age recipients [0], line 1: not an age X25519 recipient" in r.stderr
    assert not (tmp_path / "rep").exists()


def test_url_password_hidden_from_ps(tmp_path):
    """A password in a replica URL on the command line is overwritten in the
    process's command line (/proc/PID/cmdline, what ps shows), and never
    logged. The server is unreachable: replicate keeps running and retrying,
    which gives the time to look."""
    db = tmp_path / "a.db"
    new_db(db)
    secret = "pw-Zq81x"
    url = "sftp://backup:%s@127.0.0.1:1/replica" % secret
    p = subprocess.Popen([BIN, "replicate", str(db), url], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        assert p.poll() is None, p.stderr.read()
        with open("/proc/%d/cmdline" % p.pid, "rb") as f:
            argv = f.read().split(b"\0")
        assert secret.encode() not in b" ".join(argv)
        assert b"sftp://backup:xxxxxxxx@127.0.0.1:1/replica" in argv
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    assert secret not in err
    assert "replica" in err
