#!/usr/bin/python3
"""tests/fuzz/make_seeds.py - (re)make the generated seed files of the fuzz corpora.

Seeds that litesafe, SQLite or Litestream write (WAL files, databases, segments)
are made here from real runs, so they are what those programs really write;
server responses and hand-written inputs live in the corpus directories as
they are. Usage: tests/fuzz/make_seeds.py [TARGET...] (default: all it knows).
"""
import os
import re
import shlex
import shutil
import struct
import sqlite3
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def sqlite_wal(page_size, txns, rows):
    """A WAL as SQLite wrote it: `txns` transactions of `rows` rows, not checkpointed."""
    return sqlite_files(page_size, True, txns, rows, deletes=False)[1]


def fuzz_wal(out):
    seeds = {
        "sqlite-512-3txn.wal": sqlite_wal(512, 3, 4),
        "sqlite-1024-1txn.wal": sqlite_wal(1024, 1, 2),
        "sqlite-512-uncommitted-tail.wal": sqlite_wal(512, 2, 3)[:-300],
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


def dbinfo_input(db, wal=None, shm=None, journal=False):
    """fuzz_dbinfo's input: flags, the db and wal lengths (2 bytes each), db, wal, shm."""
    flags = (wal is not None) | (shm is not None) << 1 | journal << 2
    wal, shm = wal or b"", shm or b""
    return struct.pack(">BHH", flags, len(db), len(wal)) + db + wal + shm


def sqlite_files(page_size, wal_mode, txns, rows, checkpoint=False, deletes=True):
    """The database, -wal and -shm (None when absent) as SQLite leaves them while a
    connection is open: `txns` transactions of `rows` rows, a checkpoint half-way if
    asked, then a third of the rows deleted (free pages) if asked."""
    d = tempfile.mkdtemp()
    try:
        path = os.path.join(d, "x.db")
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA page_size=%d" % page_size)
        if wal_mode:
            db.execute("PRAGMA journal_mode=wal")
            db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        for i in range(txns):
            db.execute("BEGIN")
            for j in range(rows):
                db.execute("INSERT INTO t(v) VALUES (randomblob(?))", (16 + (i * 7 + j) % 40,))
            db.execute("COMMIT")
            if checkpoint and i == txns // 2:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        if deletes:
            db.execute("DELETE FROM t WHERE id % 3 = 0")
        out = []
        for ext in ("", "-wal", "-shm"):
            try:
                with open(path + ext, "rb") as f:
                    out.append(f.read())
            except FileNotFoundError:
                out.append(None)
        db.close()
        return out
    finally:
        shutil.rmtree(d)


def fuzz_dbinfo(out):
    w512 = sqlite_files(512, True, 3, 3)
    w1024 = sqlite_files(1024, True, 4, 2, checkpoint=True)
    r512 = sqlite_files(512, False, 2, 4)
    r1024 = sqlite_files(1024, False, 1, 3)
    seeds = {
        "wal-512.in": dbinfo_input(*w512),
        "wal-1024-checkpointed.in": dbinfo_input(*w1024),
        "wal-512-no-shm.in": dbinfo_input(w512[0], w512[1]),
        "wal-512-short-shm.in": dbinfo_input(w512[0], w512[1], w512[2][:4096]),
        "wal-512-torn-wal.in": dbinfo_input(w512[0], w512[1][:-200], w512[2]),
        "rollback-512.in": dbinfo_input(r512[0]),
        "rollback-1024-journal.in": dbinfo_input(r1024[0], journal=True),
        "rollback-512-stray-wal.in": dbinfo_input(r512[0], w512[1]),
        "empty-db.in": dbinfo_input(b""),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


ROOT = os.path.dirname(os.path.dirname(HERE))


def c_strings(path):
    """Each run of adjacent C string literals in a C file, decoded (the configs of a test)."""
    with open(path) as f:
        src = f.read()
    lit = r'"(?:[^"\\\n]|\\.)*"'
    for m in re.finditer(r"(?:%s\s*)+" % lit, src):
        parts = re.findall(lit, m.group(0))
        yield "".join(p[1:-1] for p in parts).encode().decode("unicode_escape")


def fuzz_config(out):
    seeds = {}
    with open(os.path.join(ROOT, "etc", "litesafe.yml")) as f:
        etc = f.read()
    seeds["etc-litesafe.yml"] = etc
    # The same with its examples switched on ("# dbs:" -> "dbs:", nested comments kept).
    seeds["etc-litesafe-uncommented.yml"] = re.sub(r"(?m)^# (?=[a-z ])", "", etc)
    for doc in ("README.md", os.path.join("docs", "migrating-from-litestream.md")):
        with open(os.path.join(ROOT, doc)) as f:
            text = f.read()
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
            seeds["%s-%d.yml" % (os.path.basename(doc).split(".")[0], i)] = block
    n = 0
    for text in c_strings(os.path.join(ROOT, "tests", "unit", "test_config.c")):
        if "\n" in text and ":" in text:
            seeds["test_config-%03d.yml" % n] = text
            n += 1
    # tests/integration/repl_helpers.py write_config and write_s3_config.
    seeds["write_config.yml"] = ("dbs:\n  - path: /tmp/it/app.db\n    monitor-interval: 100ms\n"
                                 "    replicas:\n      - url: file:///tmp/it/replica\n"
                                 "        sync-interval: 60s\n")
    seeds["write_s3_config.yml"] = (
        "dbs:\n  - path: /tmp/it/app.db\n    replicas:\n      - name: s3a\n"
        "        type: s3\n        bucket: litesafe-test\n        path: it/prefix\n"
        "        endpoint: http://127.0.0.1:9000\n        region: us-east-1\n"
        "        force-path-style: true\n        access-key-id: minio\n"
        "        secret-access-key: minio123\n        retention: 1h\n")
    for name, text in seeds.items():
        with open(os.path.join(out, name), "w") as f:
            f.write(text)


COMMANDS = ("backup bk checkpoint cp snapshot snap info verify prune restore replicate "
            "generations snapshots wal databases validate status sync version").split()

# Command lines of tests/integration (ls(...) calls), with their paths made concrete
# (the command name is dropped from the seed).
TEST_LINES = [
    "backup /tmp/it/app.db /tmp/it/out.db --json",
    "backup /tmp/it/src.db --dir /tmp/it/backups --json",
    "prune /tmp/it/backups --keep 1 --dry-run --json",
    "prune /tmp/it/backups --keep 3 --keep-within 1d --json",
    "prune /tmp/it/backups --keep-within 1h30m --json",
    "restore --output /tmp/it/out.db /tmp/it/backup.db",
    "restore -o /tmp/it/x.db -config /tmp/it/litesafe.yml -replica s3 /tmp/it/app.db",
    "restore /tmp/it/backup.db --replace /tmp/it/live.db --json",
    "restore -o /tmp/it/x.db -generation 0123456789abcdef -if-replica-exists file:///tmp/it/rep",
    "restore -o /tmp/it/x.db -if-db-not-exists -parallelism 8 /tmp/it/app.db",
    "status --json -socket /tmp/it/litesafe.sock",
    "status -config /tmp/it/litesafe.yml /tmp/it/app.db",
    "sync -timeout 5s --json /tmp/it/app.db",
    "sync -socket /tmp/it/litesafe.sock -no-wait",
    "snapshots -config /tmp/it/litesafe.yml -replica file /tmp/it/app.db",
    "wal --json file:///tmp/it/rep",
    "validate -config /tmp/it/litesafe.yml /tmp/it/app.db",
    "databases -config /tmp/it/litesafe.yml -no-expand-env",
    "verify --sha256 0000 /tmp/it/app.db",
    "checkpoint --mode restart --busy-timeout 0 /tmp/it/app.db",
    "replicate -config /tmp/it/litesafe.yml -log-level debug",
    "-- -odd.db",
    "version --help",
]


def fuzz_cli_opts(out):
    """Each seed: the arguments after the command name, separated by NUL bytes."""
    lines = []
    for doc in ("README.md", os.path.join("docs", "migrating-from-litestream.md"),
                os.path.join("man", "litesafe.1.in")):
        with open(os.path.join(ROOT, doc)) as f:
            for m in re.finditer(r"(?m)litesafe ((?:--?\w+ )*)(%s) ([^#|>`\n]*)"
                                 % "|".join(COMMANDS), f.read()):
                lines.append(m.group(1) + m.group(3))
    lines += [t.split(" ", 1)[1] if t.split()[0] in COMMANDS else t for t in TEST_LINES]
    seen = set()
    for line in lines:
        try:
            words = shlex.split(line.replace("\\-", "-"))
        except ValueError:
            continue
        seed = b"\0".join(w.encode() for w in words)
        if words and seed not in seen:
            seen.add(seed)
            with open(os.path.join(out, "cmdline-%03d" % len(seen)), "wb") as f:
                f.write(seed)


def spool_input(gen_file, name, wal, wal0=b""):
    """fuzz_spool_state's input: the generation file, a spool file's name and bytes, index 0's."""
    return (struct.pack(">B", len(gen_file)) + gen_file + name + struct.pack(">H", len(wal))
            + wal + wal0)


def fuzz_spool_state(out):
    gen = b"0123456789abcdef\n"
    w1, w0 = sqlite_wal(512, 3, 2), sqlite_wal(512, 1, 2)
    seeds = {
        "index1.in": spool_input(gen, b"00000001.wal", w1, w0),
        "index1-torn.in": spool_input(gen, b"00000001.wal", w1[:-100], w0),
        "index1-empty.in": spool_input(gen, b"00000001.wal", b"", w0),
        "index0-only.in": spool_input(gen, b"00000000.wal", w0),
        "crlf-generation.in": spool_input(b"fedcba9876543210\r\n", b"0000000a.wal", w1, w0),
        "no-generation.in": spool_input(b"", b"00000001.wal", w1),
        "bad-generation.in": spool_input(b"0123456789ABCDEF\n", b"00000001.wal", w1, w0),
        "stray-file.in": spool_input(gen, b"00000001.tmp", w1, w0),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


MAKERS = {"fuzz_wal": fuzz_wal, "fuzz_dbinfo": fuzz_dbinfo, "fuzz_config": fuzz_config,
          "fuzz_cli_opts": fuzz_cli_opts, "fuzz_spool_state": fuzz_spool_state}

if __name__ == "__main__":
    for target in sys.argv[1:] or sorted(MAKERS):
        out = os.path.join(HERE, "corpus", target)
        os.makedirs(out, exist_ok=True)
        MAKERS[target](out)
        print(target, len(os.listdir(out)), "seeds")
