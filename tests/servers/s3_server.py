#!/usr/bin/env python3
"""S3 test server: s3rver (npm @20minutes/s3rver@4.0.4, patched, installed in
tests/tools by scripts/deps.sh, started through the tests/tools/s3rver.js
wrapper) on a free 127.0.0.1 port, data under WORKDIR/data, output in
WORKDIR/s3rver.log.

start(workdir, port=None) -> info     (port: restart on that port, same data)
stop(info)

s3rver checks SigV4 signatures (a wrong secret gets 403 SignatureDoesNotMatch)
with the keys S3RVER/S3RVER. It runs under `node --openssl-legacy-provider`
(its listing continuation tokens use DES) with cwd tests/tools so require()
finds the package; Popen runs node itself (no shell), so the pid is node's.
start() creates the bucket "litesafe-test" with a SigV4-signed PUT /BUCKET
(an existing bucket on a restart is fine). info["env"]:
  LS_TEST_S3_ENDPOINT    http://127.0.0.1:PORT (path-style)
  LS_TEST_S3_BUCKET      litesafe-test
  LS_TEST_S3_REGION      us-east-1
  LS_TEST_S3_ACCESS_KEY  S3RVER
  LS_TEST_S3_SECRET_KEY  S3RVER
"""
import datetime
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
TOOLS = os.path.join(ROOT, "tests", "tools")
WRAPPER = os.path.join(TOOLS, "s3rver.js")
PACKAGE = os.path.join(TOOLS, "node_modules", "@20minutes", "s3rver")
NODE = "node"
BUCKET = "litesafe-test"
REGION = "us-east-1"
ACCESS_KEY = "S3RVER"
SECRET_KEY = "S3RVER"
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


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signed_request(port, method, path, secret=SECRET_KEY, body=b""):
    """One SigV4-signed path-style request (path already percent-encoded, no
    query). Returns (status, body bytes)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    host = "127.0.0.1:%d" % port
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canon = "\n".join([method, path, "",
                       "".join("%s:%s\n" % (k, headers[k]) for k in sorted(headers)),
                       signed, payload])
    scope = "%s/%s/s3/aws4_request" % (day, REGION)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(canon.encode()).hexdigest()])
    key = _hmac(("AWS4" + secret).encode(), day)
    for part in (REGION, "s3", "aws4_request"):
        key = _hmac(key, part)
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
                                "Signature=%s" % (ACCESS_KEY, scope, signed, sig))
    del headers["host"]  # urllib sends the same Host itself
    req = urllib.request.Request("http://%s%s" % (host, path), method=method, headers=headers,
                                 data=body if method in ("PUT", "POST") else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start(workdir, port=None):
    """Start s3rver (on `port` if given, else a free one) with its data in
    workdir/data; wait until it listens and the bucket exists."""
    if not os.path.exists(WRAPPER) or not os.path.isdir(PACKAGE):
        raise RuntimeError("%s or %s missing: run scripts/deps.sh" % (WRAPPER, PACKAGE))
    workdir = os.path.abspath(workdir)
    data = os.path.join(workdir, "data")
    os.makedirs(data, exist_ok=True)
    port = port or _free_port()
    if _port_open(port):  # s3rver exits quietly when it cannot bind
        raise RuntimeError("s3rver: port %d is already in use" % port)
    log_path = os.path.join(workdir, "s3rver.log")
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            [NODE, "--openssl-legacy-provider", WRAPPER, "-d", data, "-a", "127.0.0.1",
             "-p", str(port), "-s"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=TOOLS,
            start_new_session=True)
    finally:
        log.close()
    info = {"pids": [proc.pid], "port": port, "workdir": workdir, "log": log_path,
            "env": {"LS_TEST_S3_ENDPOINT": "http://127.0.0.1:%d" % port,
                    "LS_TEST_S3_BUCKET": BUCKET,
                    "LS_TEST_S3_REGION": REGION,
                    "LS_TEST_S3_ACCESS_KEY": ACCESS_KEY,
                    "LS_TEST_S3_SECRET_KEY": SECRET_KEY}}
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not _port_open(port):
            if proc.poll() is not None:
                raise RuntimeError("s3rver exited with %s; log tail:\n%s"
                                   % (proc.returncode, _log_tail(log_path)))
            if time.monotonic() > deadline:
                raise RuntimeError("s3rver not listening on %d after %.0f s; log tail:\n%s"
                                   % (port, READY_TIMEOUT, _log_tail(log_path)))
            time.sleep(0.05)
        st, body = signed_request(port, "PUT", "/" + BUCKET)
        if st != 200 and b"BucketAlreadyOwnedByYou" not in body and b"BucketAlreadyExists" not in body:
            raise RuntimeError("s3rver: create bucket %s: HTTP %d %s; log tail:\n%s"
                               % (BUCKET, st, body[:300], _log_tail(log_path)))
    except BaseException:
        stop(info)
        raise
    return info


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone once reaped
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def stop(info):
    """SIGTERM node (its own process group), wait up to 5 s, then SIGKILL."""
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
    # Manual use: s3_server.py DIR -> starts, prints the env, waits for ^C.
    i = start(sys.argv[1] if len(sys.argv) > 1 else "/tmp/s3-server")
    for k, v in sorted(i["env"].items()):
        print("%s=%s" % (k, v))
    sys.stdout.flush()
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    stop(i)
