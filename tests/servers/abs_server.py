#!/usr/bin/env python3
"""Azure Blob Storage test server: azurite-blob (npm azurite@3.35.0, installed
in tests/tools by scripts/deps.sh) on a free 127.0.0.1 port, data under
WORKDIR/data, output in WORKDIR/azurite.log.

start(workdir, port=None) -> info     (port: restart on that port, same data)
stop(info)

Azurite serves the well-known development account path-style:
http://127.0.0.1:PORT/devstoreaccount1/CONTAINER/BLOB, and it checks Shared
Key signatures (a wrong key gets 403). start() creates the container
"litesafe-test" with a signed Create Container request (409 ContainerAlreadyExists
on a restart is fine). info["env"]:
  LS_TEST_ABS_ENDPOINT   http://127.0.0.1:PORT/devstoreaccount1 (the backend's
                         `endpoint` option: the account is the first path part)
  LS_TEST_ABS_ACCOUNT    devstoreaccount1
  LS_TEST_ABS_KEY        its well-known base64 key
  LS_TEST_ABS_CONTAINER  litesafe-test
"""
import base64
import email.utils
import hashlib
import hmac
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
AZURITE = os.path.join(ROOT, "tests", "tools", "node_modules", ".bin", "azurite-blob")
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "litesafe-test"
VERSION = "2021-08-06"
READY_TIMEOUT = 30.0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _log_tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def signed_request(port, method, path, query, key=KEY):
    """One Shared Key signed request with no body: path is /CONTAINER[/BLOB]
    (below the account), query a dict. Returns the HTTP status."""
    date = email.utils.formatdate(usegmt=True)
    headers = {"x-ms-date": date, "x-ms-version": VERSION}
    ctype = "application/octet-stream" if method == "PUT" else ""
    canon_headers = "".join("%s:%s\n" % (k, headers[k]) for k in sorted(headers))
    canon_res = "/%s/%s%s" % (ACCOUNT, ACCOUNT, path)
    for k in sorted(query):
        canon_res += "\n%s:%s" % (k.lower(), query[k])
    # VERB, Content-Encoding, -Language, -Length ("" for 0), -MD5, -Type, Date,
    # If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range,
    # then the x-ms- headers and the resource
    sts = method + "\n" * 5 + ctype + "\n" * 7 + canon_headers + canon_res
    mac = hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()
    headers["Authorization"] = "SharedKey %s:%s" % (ACCOUNT, base64.b64encode(mac).decode())
    qs = "&".join("%s=%s" % (k, query[k]) for k in sorted(query))
    url = "http://127.0.0.1:%d/%s%s%s" % (port, ACCOUNT, path, "?" + qs if qs else "")
    if ctype:  # urllib would add a form Content-Type of its own to a PUT
        headers["Content-Type"] = ctype
    req = urllib.request.Request(url, method=method, headers=headers, data=b"" if method == "PUT" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def start(workdir, port=None):
    """Start azurite-blob (on `port` if given, else a free one) with its data in
    workdir/data; wait until it listens and the container exists."""
    if not os.access(AZURITE, os.X_OK):
        raise RuntimeError("%s missing: run scripts/deps.sh" % AZURITE)
    workdir = os.path.abspath(workdir)
    data = os.path.join(workdir, "data")
    os.makedirs(data, exist_ok=True)
    port = port or _free_port()
    log_path = os.path.join(workdir, "azurite.log")
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            [AZURITE, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", data,
             "--disableTelemetry", "--skipApiVersionCheck"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
            start_new_session=True)
    finally:
        log.close()
    info = {"pids": [proc.pid], "port": port, "workdir": workdir, "log": log_path,
            "env": {"LS_TEST_ABS_ENDPOINT": "http://127.0.0.1:%d/%s" % (port, ACCOUNT),
                    "LS_TEST_ABS_ACCOUNT": ACCOUNT,
                    "LS_TEST_ABS_KEY": KEY,
                    "LS_TEST_ABS_CONTAINER": CONTAINER}}
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not _port_open(port):
            if proc.poll() is not None:
                raise RuntimeError("azurite exited with %s; log tail:\n%s"
                                   % (proc.returncode, _log_tail(log_path)))
            if time.monotonic() > deadline:
                raise RuntimeError("azurite not listening on %d after %.0f s; log tail:\n%s"
                                   % (port, READY_TIMEOUT, _log_tail(log_path)))
            time.sleep(0.1)
        st = signed_request(port, "PUT", "/" + CONTAINER, {"restype": "container"})
        if st not in (201, 409):
            raise RuntimeError("azurite: create container %s: HTTP %d; log tail:\n%s"
                               % (CONTAINER, st, _log_tail(log_path)))
    except BaseException:
        stop(info)
        raise
    return info


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie counts as gone: reap it if it is our child, else read its state
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stop(info):
    """SIGTERM azurite (its process group: the .bin entry may be a wrapper),
    wait up to 5 s, then SIGKILL."""
    for pid in info.get("pids", []):
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            except PermissionError:
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _alive(pid):
                break


if __name__ == "__main__":
    # Manual use: abs_server.py DIR -> starts, prints the env, stops on ^C or SIGTERM.
    def _interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    i = start(sys.argv[1] if len(sys.argv) > 1 else "/tmp/abs-server")
    for k, v in sorted(i["env"].items()):
        print("%s=%s" % (k, v))
    sys.stdout.flush()
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    stop(i)
