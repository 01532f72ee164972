"""Litestream 0.5 configuration files, driven through the real binary.

  * `replica:` (0.5's one-replica mapping) works like a one-item `replicas:`
    list: `databases` lists it, `replicate` + `restore` go through it; both in
    one db are a configuration error;
  * a realistic 0.5 file (top-level replica settings, `snapshot:`,
    `validation:`, `retention:`, `logging:`, `socket:` off, db-level
    `sync-interval` and `busy-timeout`, `$PID`) is accepted and mapped;
  * every 0.5 key litesafe cannot honour is refused with exit status 2, a
    message naming the key and what to use instead; keys whose value decides
    (verify-compaction, watch, ...) accept the value litesafe honours;
  * `shutdown-timeout` and its 0.5 name `shutdown-sync-timeout`;
  * directory replication (`dir`, `pattern`, `recursive`): one database per
    SQLite file found at start, its replica under its relative path;
  * 0.5's URL forms: `gs://`, the s3 query (`?endpoint=...&region=...`)
    against the test S3 server;
  * SFTP `host-key` as an authorized-keys line against the test sshd: the
    right line replicates and restores; another key is refused (exit 1, the
    server's fingerprint shown); malformed lines are a config error (exit 2).
"""
import json
import os
import subprocess
import uuid

import pytest

from conftest import BIN, run
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, replicator, write, digest, file_url, restore_cfg, wait_restorable, stop_ok)


def cfg05(tmp, db, replica="", top="", dbkeys="", name="ls05.yml"):
    """A 0.5-style config: `top` lines at the top level, `dbkeys` under the
    db, `replica` lines (a mapping body) under `replica:`."""
    lines = [l for l in top.strip("\n").split("\n") if l.strip()] if top else []
    lines += ["dbs:", "  - path: %s" % db]
    lines += ["    " + l for l in dbkeys.strip("\n").split("\n") if l.strip()] if dbkeys else []
    if replica:
        lines.append("    replica:")
        lines += ["      " + l for l in replica.strip("\n").split("\n") if l.strip()]
    path = os.path.join(str(tmp), name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def databases(cfg, env=None):
    r = run("databases", "-config", cfg, "--json", env=env)
    assert r.rc == 0, r
    return r.json["databases"]


def config_error(cfg, *frags, cmd="databases"):
    """`litesafe CMD -config CFG` must exit 2 naming every fragment."""
    r = run(cmd, "-config", cfg)
    assert r.rc == 2, r
    for f in frags:
        assert f in r.err, (f, r.err)
    assert "unknown key" not in r.err, r.err  # a 0.5 key is known: refused with a reason
    return r


# ------------------------------------------------------------------ replica:

def test_replica_mapping_is_one_replica(tmp_path):
    db = str(tmp_path / "app.db")
    cfg = cfg05(tmp_path, db, replica="url: %s\nname: backup" % file_url(tmp_path / "rep"))
    assert databases(cfg) == [{"path": db, "replicas": "backup"}]


def test_replica_and_replicas_together_refused(tmp_path):
    db = str(tmp_path / "app.db")
    cfg = cfg05(tmp_path, db, replica="url: %s" % file_url(tmp_path / "a"),
                dbkeys="replicas:\n  - url: %s" % file_url(tmp_path / "b"))
    r = config_error(cfg, "replica and replicas cannot both be set", "ls05.yml:")
    assert "litesafe: databases:" in r.err


def test_replicate_and_restore_through_replica_mapping(tmp_path):
    db, prog = str(tmp_path / "app.db"), str(tmp_path / "progress")
    write(db, prog, txns=30, seed=1)
    rep_dir = tmp_path / "rep"
    cfg = cfg05(tmp_path, db, replica="url: %s" % file_url(rep_dir),
                top="snapshot:\n  interval: 1h\n  retention: 48h\nshutdown-timeout: 10s\n"
                    "logging:\n  level: info\n  type: text\n  stderr: true\n",
                dbkeys="sync-interval: 1s\nbusy-timeout: 1s")
    rep = replicator(tmp_path, "-config", cfg)
    rep.wait_log(r"snapshot written", timeout=60)
    write(db, prog, txns=40, seed=2)
    d = digest(db)
    wait_restorable("litesafe", tmp_path, cfg, db, d)
    stop_ok(rep)
    out, _ = restore_cfg("litesafe", tmp_path, cfg, db)
    assert digest(out) == d
    assert os.path.isdir(str(rep_dir / "generations"))
    gens = run("generations", "-config", cfg, db, "--json")
    assert gens.rc == 0 and len(gens.json["generations"]) == 1, gens


# ------------------------------------------------------------------ accepted keys

FULL_05 = """
access-key-id: AKIAEXAMPLE
secret-access-key: secret
sync-interval: 10s
region: us-east-1
sign-payload: true
require-content-md5: true
concurrent-writes: true
auto-recover: true
max-sync-ltx-files: 0
snapshot:
  interval: 24h
  retention: 72h
validation:
  interval: 12h
retention:
  enabled: true
verify-compaction: false
socket:
  enabled: false
  path: /var/run/litestream.sock
  permissions: 0600
mcp-addr: ""
heartbeat-url: ""
logging:
  level: warn
  type: json
  stderr: false
  source: false
shutdown-sync-timeout: 15s
exec: ""
"""


def test_full_05_config_accepted(tmp_path):
    db = str(tmp_path / "app.db")
    cfg = cfg05(tmp_path, db, top=FULL_05,
                dbkeys="monitor-interval: 1s\ncheckpoint-interval: 1m\nbusy-timeout: 2s\n"
                       "min-checkpoint-page-count: 1000\ntruncate-page-n: 121359\n"
                       "max-sync-wal-bytes: 0\nrestore-if-db-not-exists: false\n"
                       "watch: false\nsnapshot:\n  interval: 1h",
                replica="type: s3\nbucket: b\npath: app\nendpoint: http://127.0.0.1:1\n"
                        "storage-class: STANDARD\nsync-interval: 1s")
    assert databases(cfg) == [{"path": db, "replicas": "s3"}]


def test_gs_type_and_url(tmp_path):
    db = str(tmp_path / "app.db")
    cfg = cfg05(tmp_path, db, replica="type: gs\nbucket: b\npath: app")
    assert databases(cfg)[0]["replicas"] == "gcs"
    cfg = cfg05(tmp_path, db, replica="url: gs://b/app")
    assert databases(cfg)[0]["replicas"] == "gcs"


def test_pid_expands_to_the_process_id(tmp_path):
    db = str(tmp_path / "app-$PID.db")
    cfg = cfg05(tmp_path, db, replica="url: %s/$PID" % file_url(tmp_path / "rep"))
    p = subprocess.Popen([BIN, "databases", "-config", cfg, "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=dict(os.environ, PID="nope"))
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1])["databases"]
    assert got[0]["path"] == str(tmp_path / ("app-%d.db" % p.pid))


# ------------------------------------------------------------------ refused keys

# (where, yaml, fragments the message must hold besides the key itself)
REFUSED = [
    ("top", "levels:\n  - interval: 5m", ["levels", "remove"]),
    ("top", "l0-retention: 5m", ["l0-retention", "retention"]),
    ("top", "l0-retention-check-interval: 15s", ["l0-retention-check-interval", "retention"]),
    ("top", "mcp-addr: \":3001\"", ["mcp-addr", "--json"]),
    ("top", "heartbeat-url: https://hc-ping.com/x", ["heartbeat-url", "exec"]),
    ("top", "heartbeat-interval: 5m", ["heartbeat-interval", "exec"]),
    ("top", "shutdown-sync-interval: 1s", ["shutdown-sync-interval", "shutdown-timeout"]),
    ("top", "verify-compaction: true", ["verify-compaction", "validation-interval"]),
    ("top", "logging:\n  source: true", ["logging.source"]),
    ("db", "max-sync-wal-bytes: 1048576", ["max-sync-wal-bytes", "remove"]),
    ("db", "restore-if-db-not-exists: true", ["restore-if-db-not-exists",
                                              "-if-db-not-exists"]),
    ("db", "watch: true", ["watch", "SIGHUP"]),
    ("replica", "part-size: 10MB", ["part-size", "remove"]),
    ("replica", "concurrency: 4", ["concurrency", "remove"]),
    ("replica", "storage-class: GLACIER_IR", ["storage-class", "lifecycle"]),
    ("replica", "sign-payload: false", ["sign-payload", "signs"]),
    ("replica", "require-content-md5: false", ["require-content-md5", "remove"]),
    ("replica", "sse-customer-key: abc", ["sse-customer-key", "age"]),
    ("replica", "sse-customer-key-path: /k", ["sse-customer-key-path", "age"]),
    ("replica", "sse-customer-algorithm: AES256", ["sse-customer-algorithm", "age"]),
    ("replica", "sse-kms-key-id: arn:aws:kms:x", ["sse-kms-key-id", "bucket"]),
    ("replica", "sas-token: sv=2020", ["sas-token", "account-key"]),
    ("replica", "max-sync-ltx-files: 10", ["max-sync-ltx-files", "remove"]),
    ("replica", "auto-recover: false", ["auto-recover", "generation"]),
    ("replica", "webdav-url: https://dav.example.com", ["webdav-url", "WebDAV"]),
    ("replica", "jwt: x", ["jwt", "NATS"]),
    ("replica", "root-cas: [/ca.pem]", ["root-cas", "NATS"]),
    ("replica", "timeout: 10s", ["timeout", "NATS"]),
    ("replica", "type: webdav\nwebdav-url: x", ["webdav", "sftp"]),
    ("replica", "type: nats\nbucket: x", ["nats"]),
    ("replica", "type: oss\nbucket: x", ["oss", "s3"]),
    ("replica", "url: nats://host:4222/bucket", ["nats"]),
    ("replica", "url: oss://bucket/path", ["oss", "endpoint"]),
    ("replica", "url: webdavs://host/path", ["webdav"]),
    ("replica", "url: s3://b/p?partSize=10", ["partSize"]),
    ("replica", "url: s3://b/p?bogus=1", ["bogus"]),
    ("top", "storage-class: GLACIER", ["storage-class"]),
]


@pytest.mark.parametrize("where,yaml,frags", REFUSED, ids=[r[1].split(":")[0] + "-" + r[0]
                                                            for r in REFUSED])
def test_refused_keys(tmp_path, where, yaml, frags):
    db = str(tmp_path / "app.db")
    rep = "url: %s" % file_url(tmp_path / "rep")
    if where == "top":
        cfg = cfg05(tmp_path, db, replica=rep, top=yaml)
    elif where == "db":
        cfg = cfg05(tmp_path, db, replica=rep, dbkeys=yaml)
    else:
        cfg = cfg05(tmp_path, db, replica=yaml if yaml.startswith(("type:", "url:"))
                    else rep + "\n" + yaml)
    r = config_error(cfg, *frags)
    assert "ls05.yml:" in r.err, r.err
    # replicate refuses it at start too, before doing anything
    r = run("replicate", "-config", cfg, timeout=60)
    assert r.rc == 2, r
    assert not os.path.exists(str(tmp_path / "rep"))


# ------------------------------------------------------------------ shutdown-timeout

@pytest.mark.parametrize("yaml,ok", [
    ("shutdown-timeout: 0", True),
    ("shutdown-timeout: 45s", True),
    ("shutdown-sync-timeout: 2m", True),
    ("shutdown-timeout: -1s", False),
    ("shutdown-timeout: soon", False),
    ("shutdown-timeout: 10", False),
    ("shutdown-timeout: 10s\nshutdown-sync-timeout: 10s", False),
])
def test_shutdown_timeout(tmp_path, yaml, ok):
    db = str(tmp_path / "app.db")
    cfg = cfg05(tmp_path, db, replica="url: %s" % file_url(tmp_path / "rep"), top=yaml)
    if ok:
        databases(cfg)
    else:
        config_error(cfg, "shutdown-")


# ------------------------------------------------------------------ directories

def make_sqlite(path):
    import sqlite3
    os.makedirs(os.path.dirname(path), exist_ok=True)
    c = sqlite3.connect(path)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("CREATE TABLE t(x)")
    c.execute("INSERT INTO t VALUES (1)")
    c.commit()
    c.close()


def test_directory_replication(tmp_path):
    d = tmp_path / "data"
    make_sqlite(str(d / "a.db"))
    make_sqlite(str(d / "sub" / "b.db"))
    make_sqlite(str(d / "c.sqlite"))
    (d / "notes.db").write_text("not a database\n")
    rep_root = tmp_path / "rep"

    def cfg(extra):
        p = tmp_path / "dir.yml"
        p.write_text("dbs:\n  - dir: %s\n    pattern: \"*.db\"\n%s    replica:\n"
                     "      url: %s\n" % (d, extra, file_url(rep_root)))
        return str(p)

    assert databases(cfg("")) == [{"path": str(d / "a.db"), "replicas": "file"}]
    rec = cfg("    recursive: true\n")
    assert [x["path"] for x in databases(rec)] == [str(d / "a.db"), str(d / "sub" / "b.db")]

    # replicated under the replica root + the relative path, restorable by path
    rep = replicator(tmp_path, "-config", rec)
    rep.wait_log(r"snapshot written", count=2, timeout=60)
    b = str(d / "sub" / "b.db")
    wait_restorable("litesafe", tmp_path, rec, b, digest(b))
    stop_ok(rep)
    assert os.path.isdir(str(rep_root / "sub" / "b.db" / "generations"))
    assert os.path.isdir(str(rep_root / "a.db" / "generations"))
    assert os.path.isdir(str(d / "sub" / ".b.db-litesafe"))

    p = tmp_path / "bad.yml"
    p.write_text("dbs:\n  - dir: %s\n    replica:\n      url: %s\n" % (d, file_url(rep_root)))
    config_error(str(p), "pattern")
    p.write_text("dbs:\n  - dir: %s\n    pattern: \"*.nothing\"\n    replica:\n      url: %s\n"
                 % (d, file_url(rep_root)))
    config_error(str(p), "*.nothing")


# ------------------------------------------------------------------ s3 URL query

def test_s3_url_query_endpoint(tmp_path, servers):
    env = servers
    db, prog = str(tmp_path / "app.db"), str(tmp_path / "progress")
    write(db, prog, txns=10, seed=3)
    host = env["LS_TEST_S3_ENDPOINT"].split("://", 1)[1]
    prefix = "ls05-" + uuid.uuid4().hex[:8]
    cfg = cfg05(tmp_path, db,
                replica="url: s3://%s/%s?endpoint=%s&region=%s&forcePathStyle=true\n"
                        "access-key-id: %s\nsecret-access-key: %s"
                        % (env["LS_TEST_S3_BUCKET"], prefix, host, env["LS_TEST_S3_REGION"],
                           env["LS_TEST_S3_ACCESS_KEY"], env["LS_TEST_S3_SECRET_KEY"]))
    rep = replicator(tmp_path, "-config", cfg)
    rep.wait_log(r"snapshot written", timeout=60)
    d = digest(db)
    wait_restorable("litesafe", tmp_path, cfg, db, d)
    stop_ok(rep)


# ------------------------------------------------------------------ sftp host-key lines

def server_key_line(env):
    """The test sshd's host key as an authorized-keys line (from its known_hosts)."""
    with open(env["LS_TEST_SFTP_KNOWN_HOSTS"]) as f:
        fields = f.read().split()
    return "%s %s host-key-comment" % (fields[1], fields[2])


def sftp_cfg(tmp_path, db, env, remote, host_key, known_hosts=None):
    lines = "type: sftp\nhost: %s\nuser: %s\nkey-path: %s\npath: %s\nhost-key: %s" % (
        env["LS_TEST_SFTP_HOST"], env["LS_TEST_SFTP_USER"], env["LS_TEST_SFTP_KEY"], remote,
        host_key)
    if known_hosts:
        lines += "\nknown-hosts: %s" % known_hosts
    return cfg05(tmp_path, db, replica=lines)


def test_sftp_host_key_line(tmp_path, servers):
    env = servers
    db, prog = str(tmp_path / "app.db"), str(tmp_path / "progress")
    write(db, prog, txns=10, seed=4)
    remote = os.path.join(env["LS_TEST_SFTP_ROOT"], "hk-" + uuid.uuid4().hex[:8])
    home = tmp_path / "home"  # no ~/.ssh/known_hosts: the line alone must do
    home.mkdir()
    henv = {"HOME": str(home)}
    cfg = sftp_cfg(tmp_path, db, env, remote, server_key_line(env))
    rep = replicator(tmp_path, "-config", cfg, env=henv)
    rep.wait_log(r"snapshot written", timeout=60)
    write(db, prog, txns=20, seed=5)
    d = digest(db)
    wait_restorable("litesafe", tmp_path, cfg, db, d, env=henv)
    stop_ok(rep)
    out, _ = restore_cfg("litesafe", tmp_path, cfg, db, env=henv)
    assert digest(out) == d
    # with a known-hosts file as well, both must agree
    cfg = sftp_cfg(tmp_path, db, env, remote, server_key_line(env),
                   known_hosts=env["LS_TEST_SFTP_KNOWN_HOSTS"])
    r = run("generations", "-config", cfg, db, env=henv)
    assert r.rc == 0, r


def test_sftp_wrong_host_key_line_refused(tmp_path, servers):
    env = servers
    db = str(tmp_path / "app.db")
    write(db, str(tmp_path / "progress"), txns=2, seed=6)
    key = str(tmp_path / "other")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True,
                   stdout=subprocess.DEVNULL)
    with open(key + ".pub") as f:
        other = f.read().strip()
    remote = os.path.join(env["LS_TEST_SFTP_ROOT"], "hk-" + uuid.uuid4().hex[:8])
    cfg = sftp_cfg(tmp_path, db, env, remote, other)
    for cmd in (["generations", "-config", cfg, db],
                ["restore", "-config", cfg, "-o", str(tmp_path / "out.db"), db]):
        r = run(*cmd)
        assert r.rc == 1, r
        assert "host key verification failed" in r.err, r.err
        assert env["LS_TEST_SFTP_FINGERPRINT"] in r.err, r.err
        assert not os.path.exists(str(tmp_path / "out.db"))
    assert not os.path.exists(remote)


@pytest.mark.parametrize("line", [
    "ssh-ed25519",
    "ssh-ed25519 not*base64",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEb/DErStyjlWdRnZS4P7NJGfbeprvvjGp7ozV2u",
    "ssh-foo AAAAC3NzaC1lZDI1NTE5AAAAIEb/DErStyjlWdRnZS4P7NJGfbeprvvjGp7ozV2uynFM",
    "ecdsa-sha2-nistp256 AAAAC3NzaC1lZDI1NTE5AAAAIEb/DErStyjlWdRnZS4P7NJGfbeprvvjGp7ozV2uynFM",
    "SHA256:tooshort",
])
def test_sftp_malformed_host_key_is_config_error(tmp_path, line):
    db = str(tmp_path / "app.db")
    cfg = cfg05(tmp_path, db, replica="type: sftp\nhost: 127.0.0.1:1\nuser: u\n"
                                      "path: /r\nhost-key: \"%s\"" % line)
    for cmd in ("databases", "generations"):
        r = run(cmd, "-config", cfg, *([db] if cmd == "generations" else []))
        assert r.rc == 2, r
        assert "host-key" in r.err, r.err
