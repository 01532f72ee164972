#!/usr/bin/env python3
"""Start and stop the real test servers on 127.0.0.1: S3 (s3rver), SFTP (a
private sshd) and Azure Blob (azurite).

Each kind has a module <kind>_server.py with start(workdir) -> info and
stop(info); info["env"] holds the LS_TEST_* variables the tests read. This
script runs them all and records the result in DIR/servers.env (KEY=VALUE
lines: what tests read, through $LS_TEST_SERVERS) and DIR/servers.json (what
stop needs: pids). ctest runs `start` as the setup of the "servers" fixture
and `stop` as its cleanup, so no server outlives a test run.

    testservers.py start DIR [KIND...]   start (every kind by default)
    testservers.py stop DIR              stop what start recorded
"""
import importlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = ("s3", "sftp", "abs")
sys.path.insert(0, HERE)


def module(kind):
    return importlib.import_module("%s_server" % kind)


def read_env(path):
    """The KEY=VALUE lines of a servers.env file, as a dict."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


def start(workdir, kinds=KINDS):
    """Start every kind in kinds; on any failure stop the ones started and raise."""
    os.makedirs(workdir, exist_ok=True)
    infos = {}
    try:
        for kind in kinds:
            d = os.path.join(workdir, kind)
            os.makedirs(d, exist_ok=True)
            infos[kind] = module(kind).start(d)
    except BaseException:
        stop_infos(infos)
        raise
    env = {}
    for info in infos.values():
        env.update(info["env"])
    with open(os.path.join(workdir, "servers.json"), "w") as f:
        json.dump(infos, f)
    tmp = os.path.join(workdir, "servers.env.tmp")
    with open(tmp, "w") as f:
        for k in sorted(env):
            f.write("%s=%s\n" % (k, env[k]))
    os.replace(tmp, os.path.join(workdir, "servers.env"))
    return infos, env


def stop_infos(infos):
    err = None
    for kind, info in infos.items():
        try:
            module(kind).stop(info)
        except Exception as e:  # stop the others anyway
            err = e
    if err:
        raise err


def stop(workdir):
    path = os.path.join(workdir, "servers.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        infos = json.load(f)
    for name in ("servers.json", "servers.env"):
        try:
            os.unlink(os.path.join(workdir, name))
        except FileNotFoundError:
            pass
    stop_infos(infos)


def main(argv):
    if len(argv) < 3 or argv[1] not in ("start", "stop"):
        sys.stderr.write(__doc__)
        return 2
    workdir = os.path.abspath(argv[2])
    if argv[1] == "start":
        stop(workdir)  # a previous run that was killed before its cleanup
        kinds = argv[3:] or KINDS
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            sys.stderr.write("testservers: unknown kind %s\n" % ", ".join(bad))
            return 2
        _, env = start(workdir, kinds)
        for k in sorted(env):
            print("%s=%s" % (k, env[k]))
    else:
        stop(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
