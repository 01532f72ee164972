"""Logging and reload: SIGHUP reopens the log file (logrotate) and reloads the
configuration file. Databases added start, removed ones stop flushed (their
replica gets every commit), unchanged ones keep running untouched (same
threads, same generation, shipping even while the reload flushes another
database), changed ones restart and resume in the same generation; a bad
new configuration is logged and the old one keeps running. logging: file,
stderr, type and level, applied at start and on reload; each line is one
write(), never torn.
"""
import json
import os
import re
import signal
import sqlite3
import time

import pytest

from throttle_proxy import ThrottleProxy
from conftest import BIN
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, start_proc, digest, restore_cfg, wait_replicated, file_url, generations)


# ---------------------------------------------------------------- helpers

def make_db(path, rows=20, seed=0):
    """A WAL database with a table t and `rows` rows."""
    c = sqlite3.connect(str(path))
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA busy_timeout=5000")
    c.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
    commit(c, rows, seed)
    return c


def commit(c, rows, seed=0):
    with c:
        for i in range(rows):
            c.execute("INSERT INTO t(v) VALUES (?)", (os.urandom(100) + bytes([seed % 256]),))


def db_yaml(db, replicas, keys=None):
    """One dbs: entry; replicas: list of dicts of replica keys."""
    lines = ["  - path: %s" % db]
    for k, v in (keys or {}).items():
        lines.append("    %s: %s" % (k, v))
    lines.append("    replicas:")
    for rep in replicas:
        first = True
        for k, v in rep.items():
            lines.append("      %s %s: %s" % ("-" if first else " ", k, v))
            first = False
    return "\n".join(lines)


def write_cfg(path, entries, top=""):
    with open(str(path), "w") as f:
        f.write(top + "dbs:\n" + "\n".join(entries) + "\n")
    return str(path)


def file_rep(d, **kw):
    return dict({"url": file_url(d)}, **kw)


def s3_rep(servers, endpoint, prefix, name="s3"):
    return {"name": name, "type": "s3", "bucket": servers["LS_TEST_S3_BUCKET"],
            "path": prefix, "endpoint": endpoint, "region": servers["LS_TEST_S3_REGION"],
            "force-path-style": "true",
            "access-key-id": servers["LS_TEST_S3_ACCESS_KEY"],
            "secret-access-key": servers["LS_TEST_S3_SECRET_KEY"]}


def replicate(tmp, cfg, *extra):
    """`litesafe replicate -config CFG` (the configuration's log level unless extra says)."""
    n = 0
    while os.path.exists(os.path.join(str(tmp), "rep-%d.out" % n)):
        n += 1
    return start_proc([BIN, "replicate"] + list(extra) + ["-config", cfg],
                      os.path.join(str(tmp), "rep-%d.out" % n))


def wait_file(path, pattern, timeout=60, count=1, proc=None):
    """Wait until `pattern` occurs `count` times in the file; returns its text."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        text = open(path).read() if os.path.exists(path) else ""
        if len(rx.findall(text)) >= count:
            return text
        if proc is not None and not proc.alive():
            raise AssertionError("exited before %r in %s:\n%s\n%s"
                                 % (pattern, path, text[-3000:], proc.tail()))
        if time.monotonic() > deadline:
            raise AssertionError("no %r in %s within %ss:\n%s" % (pattern, path, timeout,
                                                                   text[-3000:]))
        time.sleep(0.05)


def hup_and_wait(rep, pattern, count=1):
    """SIGHUP, then wait for the count-th `pattern` in its output."""
    rep.signal(signal.SIGHUP)
    return rep.wait_log(pattern, count=count)


def gens(d):
    return [g["generation"] for g in generations(file_url(d))]


@pytest.fixture
def proxy(servers):
    p = ThrottleProxy(servers["LS_TEST_S3_ENDPOINT"]).start()
    yield p
    p.stop()


# ---------------------------------------------------------------- reload

def test_reload_adds_removes_and_keeps(tmp_path, servers, proxy):
    """(a) an added database is replicated; (b) a removed one is flushed
    before it stops: its replica restores to its last commit; (c) the
    unchanged one is not restarted, keeps its generation, and ships commits
    made while the reload is busy flushing the removed one."""
    keep_db, gone_db, new_db = (str(tmp_path / n) for n in ("keep.db", "gone.db", "new.db"))
    keep_rep, new_rep = tmp_path / "keep-r", tmp_path / "new-r"
    prefix = "reload/%d-%d" % (os.getpid(), int(time.time() * 1000))
    keep_c, gone_c = make_db(keep_db), make_db(gone_db)
    keep_entry = db_yaml(keep_db, [file_rep(keep_rep)])
    # the removed database ships to S3 through a proxy that can hold its flush
    gone_entry = db_yaml(gone_db, [s3_rep(servers, proxy.url, prefix)],
                         {"sync-interval": "1h"})
    cfg = write_cfg(tmp_path / "ls.yml", [keep_entry, gone_entry])
    direct = write_cfg(tmp_path / "direct.yml",
                       [db_yaml(gone_db, [s3_rep(servers, servers["LS_TEST_S3_ENDPOINT"],
                                                 prefix)])])
    rep = replicate(tmp_path, cfg, "-log-level", "debug")
    rep.wait_log(r"snapshot written\" db=%s" % re.escape(gone_db))
    wait_replicated(tmp_path, file_url(keep_rep), digest(keep_db))
    gen = gens(keep_rep)
    assert len(gen) == 1, gen

    commit(gone_c, 30, seed=1)  # sync-interval 1h: only a flush ships these
    gone_want = digest(gone_db)
    make_db(new_db, rows=15).close()
    write_cfg(cfg, [keep_entry, db_yaml(new_db, [file_rep(new_rep)])])
    proxy.throttle = True  # the removed database's flush waits
    since = len(rep.text())
    rep.signal(signal.SIGHUP)
    rep.wait_log(r"reload\" config=\S+ kept=1 changed=0 added=1 removed=1", since=since)

    # (c) while the reload flushes the removed database, the kept one ships
    commit(keep_c, 25, seed=2)
    wait_replicated(tmp_path, file_url(keep_rep), digest(keep_db))
    assert "database stopped\" db=%s" % gone_db not in rep.text(), rep.tail()
    assert rep.alive()
    # (a) the added one is already replicated, before the reload ends
    wait_replicated(tmp_path, file_url(new_rep), digest(new_db))

    proxy.throttle = False
    rep.wait_log(r"database stopped\" db=%s reason=removed" % re.escape(gone_db), since=since)
    assert proxy.throttled > 0
    # (b) every commit of the removed database is on its replica
    out, _ = restore_cfg("litesafe", tmp_path, direct, gone_db)
    assert digest(out) == gone_want
    # no longer replicated: a commit now stays off the replica
    commit(gone_c, 5, seed=3)

    # (c) the kept database was never restarted and kept its generation
    after = rep.text()[since:]
    assert "replicating\" db=%s " % keep_db not in after, after
    assert "source open\" db=%s " % keep_db not in after, after
    assert "database ready\" db=%s" % keep_db not in after, after
    commit(keep_c, 10, seed=4)
    wait_replicated(tmp_path, file_url(keep_rep), digest(keep_db))
    assert gens(keep_rep) == gen

    assert rep.stop() == 0, rep.tail()
    out, _ = restore_cfg("litesafe", tmp_path, direct, gone_db)
    assert digest(out) == gone_want  # the stop did not touch it again
    errors = [x for x in rep.text().splitlines() if "level=ERROR" in x and "SlowDown" not in x]
    assert not errors, errors
    keep_c.close()
    gone_c.close()


def test_reload_changed_database_resumes_in_its_generation(tmp_path):
    """(d) a second replica and a new setting: the database restarts (its
    old replicator flushed first), resumes from its spool without a new
    generation, and the new replica joins that generation."""
    db = str(tmp_path / "app.db")
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    c = make_db(db)
    cfg = write_cfg(tmp_path / "ls.yml",
                    [db_yaml(db, [file_rep(r1, name="one")], {"monitor-interval": "1s"})])
    rep = replicate(tmp_path, cfg, "-log-level", "debug")
    wait_replicated(tmp_path, file_url(r1), digest(db))
    gen = gens(r1)
    assert len(gen) == 1, gen
    commit(c, 10, seed=1)

    write_cfg(cfg, [db_yaml(db, [file_rep(r1, name="one"), file_rep(r2, name="two")],
                            {"monitor-interval": "2s"})])
    since = len(rep.text())
    rep.signal(signal.SIGHUP)
    rep.wait_log(r"reload\" config=\S+ kept=0 changed=1 added=0 removed=0", since=since)
    rep.wait_log(r"database stopped\" db=%s reason=changed" % re.escape(db), since=since)
    rep.wait_log(r"replicating\" db=%s replica=two" % re.escape(db), since=since)
    commit(c, 20, seed=2)
    want = digest(db)
    wait_replicated(tmp_path, file_url(r1), want)
    wait_replicated(tmp_path, file_url(r2), want)
    assert gens(r1) == gen, rep.tail()
    assert gens(r2) == gen, rep.tail()
    assert "new generation\" db=%s" % db not in rep.text()[since:], rep.tail()
    assert rep.stop() == 0, rep.tail()
    assert "level=ERROR" not in rep.text(), rep.tail()
    c.close()


BAD = [
    ("syntax", "dbs:\n  - path: [unclosed\n", r"reload rejected\" config=\S+ error=\".*ls.yml:"),
    ("unknown key", "dbs:\n  - path: %(db)s\n    replicas:\n      - url: %(url)s\n"
     "        sync-intervall: 1s\n", r"reload rejected\" .*sync-intervall"),
    ("bad value", "dbs:\n  - path: %(db)s\n    replicas:\n      - url: %(url)s\n"
     "        sync-interval: soon\n", r"reload rejected\" .*sync-interval"),
    ("bad level", "logging:\n  level: loud\ndbs:\n  - path: %(db)s\n    replicas:\n"
     "      - url: %(url)s\n", r"reload rejected\" .*loud"),
    ("log file", "logging:\n  file: /nonexistent/dir/ls.log\ndbs:\n  - path: %(db)s\n"
     "    replicas:\n      - url: %(url)s\n", r"reload rejected\" .*/nonexistent/dir/ls.log"),
    ("age", "dbs:\n  - path: %(db)s\n    replicas:\n      - url: %(url)s\n"
     "        age:\n          recipients: [age1xyz]\n", r"reload rejected\" .*age"),
]


def test_reload_rejects_a_bad_config_and_keeps_running(tmp_path):
    """(e) a syntax error, an unknown key, a bad value, a log file that
    cannot be opened, a replica that cannot start, a missing file: each is
    logged, and the running configuration goes on unchanged (same
    generation, still shipping, nothing restarted)."""
    db = str(tmp_path / "app.db")
    r1, other = tmp_path / "r1", tmp_path / "other-r"
    c = make_db(db)
    cfg = write_cfg(tmp_path / "ls.yml", [db_yaml(db, [file_rep(r1)])])
    good = open(cfg).read()
    rep = replicate(tmp_path, cfg)
    wait_replicated(tmp_path, file_url(r1), digest(db))
    gen = gens(r1)
    start = len(rep.text())
    for n, (what, text, pattern) in enumerate(BAD):
        with open(cfg, "w") as f:
            f.write(text % {"db": db, "url": file_url(other)})
        since = len(rep.text())
        rep.signal(signal.SIGHUP)
        rep.wait_log(pattern, since=since)
        assert rep.alive(), what
        commit(c, 5, seed=n)
        wait_replicated(tmp_path, file_url(r1), digest(db), what=what)
    os.unlink(cfg)
    since = len(rep.text())
    rep.signal(signal.SIGHUP)
    rep.wait_log(r"reload rejected\" config=\S+ error=\".*ls.yml", since=since)
    assert not os.path.exists(other)  # no bad config was applied, even in part
    assert "replicating\" db=" not in rep.text()[start:]
    commit(c, 5, seed=99)
    wait_replicated(tmp_path, file_url(r1), digest(db))
    assert gens(r1) == gen
    # the file back: the reload applies (nothing changed)
    with open(cfg, "w") as f:
        f.write(good)
    hup_and_wait(rep, r"reload\" config=\S+ kept=1 changed=0 added=0 removed=0")
    assert rep.stop() == 0, rep.tail()
    c.close()


def test_reload_with_urls_only_reopens(tmp_path):
    """`replicate DB URL`: no file to read again; SIGHUP neither stops nor
    restarts anything."""
    db = str(tmp_path / "app.db")
    r1 = tmp_path / "r1"
    c = make_db(db)
    rep = start_proc([BIN, "replicate", db, file_url(r1)], tmp_path / "rep.out")
    wait_replicated(tmp_path, file_url(r1), digest(db))
    rep.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert rep.alive(), rep.tail()
    commit(c, 5)
    wait_replicated(tmp_path, file_url(r1), digest(db))
    assert 'msg="reload' not in rep.text()
    assert rep.stop() == 0, rep.tail()
    c.close()


def test_stop_flushes_every_database(tmp_path):
    """The final stop flushes all databases (one replicator each, stopped
    together): commits held back by sync-interval reach both replicas."""
    dbs = [str(tmp_path / ("d%d.db" % i)) for i in range(3)]
    reps = [tmp_path / ("r%d" % i) for i in range(3)]
    conns = [make_db(d) for d in dbs]
    cfg = write_cfg(tmp_path / "ls.yml", [db_yaml(d, [file_rep(r)], {"sync-interval": "1h"})
                                          for d, r in zip(dbs, reps)])
    rep = replicate(tmp_path, cfg, "-log-level", "debug")
    rep.wait_log(r"snapshot written", count=3)
    wants = []
    for i, c in enumerate(conns):
        commit(c, 20, seed=i)
        wants.append(digest(dbs[i]))
    assert rep.stop() == 0, rep.tail()
    for d, r, want in zip(dbs, reps, wants):
        out, _ = restore_cfg("litesafe", tmp_path, cfg, d)
        assert digest(out) == want, d
    for c in conns:
        c.close()


def two_throttled(tmp_path, servers, proxy, top=""):
    """Two databases replicated to S3 through the proxy, throttled once
    they hold their first snapshot, with commits pending."""
    prefix = "stop2/%d-%d" % (os.getpid(), int(time.time() * 1000))
    dbs = [str(tmp_path / ("d%d.db" % i)) for i in range(2)]
    conns = [make_db(d) for d in dbs]
    cfg = write_cfg(tmp_path / "ls.yml",
                    [db_yaml(d, [s3_rep(servers, proxy.url, "%s/%d" % (prefix, i))])
                     for i, d in enumerate(dbs)], top)
    rep = replicate(tmp_path, cfg, "-log-level", "info")
    rep.wait_log(r"snapshot written", count=2)
    proxy.throttle = True
    for i, c in enumerate(conns):
        commit(c, 10, seed=i)
        c.close()
    time.sleep(0.3)  # each replica has tried, and been refused
    return dbs, rep


def test_stop_past_the_timeout_names_every_database(tmp_path, servers, proxy):
    """Both databases flush at once under one shutdown-timeout; the exit
    names the first and counts the other."""
    dbs, rep = two_throttled(tmp_path, servers, proxy, "shutdown-timeout: 2s\n")
    rep.signal(signal.SIGTERM)
    assert rep.wait(60) == 1, rep.tail()
    last = rep.tail(2)
    assert "shutdown-timeout 2s" in last, last
    assert "and 1 more database(s) not flushed" in last, last
    for d in dbs:
        assert re.search(r"not flushed at shutdown\" db=%s " % re.escape(d), rep.text()), d


def test_second_signal_interrupts_every_database(tmp_path, servers, proxy):
    """A second signal cuts every database's flush short (shutdown-timeout
    30 s by default)."""
    dbs, rep = two_throttled(tmp_path, servers, proxy)
    rep.signal(signal.SIGTERM)
    time.sleep(1)
    assert rep.alive(), rep.tail()
    rep.signal(signal.SIGINT)
    assert rep.wait(20) == 1, rep.tail()
    assert "and 1 more database(s) not flushed" in rep.tail(2), rep.tail()


# ---------------------------------------------------------------- logging

def log_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    assert not data or data.endswith(b"\n"), "a torn last line in %s" % path
    return data.decode().splitlines()


def test_log_file_and_logrotate(tmp_path):
    """(f) logging.file: lines go to the file and not to stderr; rename the
    file and SIGHUP (logrotate): new lines go to a new file, none is lost or
    doubled, none is torn. stderr: true writes to both."""
    db, db2 = str(tmp_path / "app.db"), str(tmp_path / "two.db")
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    log = str(tmp_path / "ls.log")
    c = make_db(db)
    make_db(db2).close()
    top = "logging:\n  file: %s\n" % log
    cfg = write_cfg(tmp_path / "ls.yml", [db_yaml(db, [file_rep(r1)])], top)
    rep = replicate(tmp_path, cfg, "-log-level", "debug")
    wait_file(log, r"replicating\" db=%s " % re.escape(db), proc=rep)
    wait_replicated(tmp_path, file_url(r1), digest(db))
    assert (os.stat(log).st_mode & 0o777) & ~0o640 == 0, oct(os.stat(log).st_mode)
    assert "level=" not in rep.text(), rep.text()  # stderr: off with a file

    os.rename(log, log + ".1")
    commit(c, 10, seed=1)  # lines logged now go to the renamed file
    write_cfg(cfg, [db_yaml(db, [file_rep(r1)]), db_yaml(db2, [file_rep(r2)])], top)
    rep.signal(signal.SIGHUP)
    wait_file(log, r"replicating\" db=%s " % re.escape(db2), proc=rep)
    wait_replicated(tmp_path, file_url(r2), digest(db2))
    old, new = log_lines(log + ".1"), log_lines(log)
    for line in old + new:
        assert re.match(r'^time=\S+ level=(DEBUG|INFO|WARN|ERROR) msg="', line), line
    assert not any("reload\" config=" in x for x in old), old
    assert sum("reload\" config=" in x for x in new) == 1, new
    assert sum("replicating\" db=%s " % db in x for x in old + new) == 1
    assert not set(old) & set(new)  # nothing written twice
    assert "level=" not in rep.text(), rep.text()

    # stderr: true: both
    write_cfg(cfg, [db_yaml(db, [file_rep(r1)]), db_yaml(db2, [file_rep(r2)])],
              top + "  stderr: true\n")
    rep.signal(signal.SIGHUP)
    rep.wait_log(r"reload\" config=\S+ kept=2")
    wait_file(log, r"reload\" config=\S+ kept=2", proc=rep)
    assert rep.stop() == 0, rep.tail()
    c.close()


def test_log_type_and_level_on_reload(tmp_path):
    """(g) logging.level and type change on reload: warn hides the INFO
    lines, info shows them again, json makes each line one JSON object;
    exec and addr changes are logged as needing a restart."""
    db, db2, db3 = (str(tmp_path / n) for n in ("app.db", "two.db", "three.db"))
    log = str(tmp_path / "ls.log")
    c = make_db(db)
    make_db(db2).close()
    make_db(db3).close()
    entries = [db_yaml(db, [file_rep(tmp_path / "r1")])]
    cfg = write_cfg(tmp_path / "ls.yml", entries,
                    "logging:\n  level: warn\n  file: %s\n" % log)
    rep = replicate(tmp_path, cfg)
    wait_replicated(tmp_path, file_url(tmp_path / "r1"), digest(db))
    assert "level=INFO" not in open(log).read()

    entries.append(db_yaml(db2, [file_rep(tmp_path / "r2")]))
    write_cfg(cfg, entries, "exec: sleep 1000\nlogging:\n  level: info\n  file: %s\n" % log)
    rep.signal(signal.SIGHUP)
    text = wait_file(log, r"replicating\" db=%s " % re.escape(db2), proc=rep)
    assert "level=INFO" in text
    assert re.search(r"level=WARN msg=\"reload: setting needs a restart\" key=exec", text), text

    entries.append(db_yaml(db3, [file_rep(tmp_path / "r3")]))
    write_cfg(cfg, entries, "logging:\n  level: info\n  type: json\n  file: %s\n" % log)
    size = os.path.getsize(log)
    rep.signal(signal.SIGHUP)
    wait_file(log, r'"msg":"replicating","db":"%s"' % re.escape(db3), proc=rep)
    with open(log) as f:
        f.seek(size)
        recs = [json.loads(line) for line in f.read().splitlines()]
    assert {"time", "level", "msg"} <= set(recs[0]), recs[0]
    assert any(r["msg"] == "reload" and r["added"] == "1" for r in recs), recs

    # level error, and a fourth database: replicated, but its INFO lines are not written
    db4 = str(tmp_path / "four.db")
    make_db(db4).close()
    entries.append(db_yaml(db4, [file_rep(tmp_path / "r4")]))
    write_cfg(cfg, entries, "logging:\n  level: error\n  type: json\n  file: %s\n" % log)
    size = os.path.getsize(log)
    rep.signal(signal.SIGHUP)
    wait_replicated(tmp_path, file_url(tmp_path / "r4"), digest(db4))
    with open(log) as f:
        f.seek(size)
        later = f.read()
    assert db4 not in later and '"msg":"reload"' not in later, later
    assert rep.stop() == 0, rep.tail()
    c.close()
