#!/usr/bin/env python3
"""S3 test server: s3rver (npm @20minutes/s3rver@4.0.4, patched, installed in
tests/tools by scripts/deps.sh, started through the tests/tools/s3rver.js
wrapper) on a free 127.0.0.1 port, data under WORKDIR/data, output in
WORKDIR/s3rver.log.

start(workdir, port=None, quiet=True) -> info
                      (port: restart on that port, same data; quiet=False: s3rver
                      logs every request, one line each, to WORKDIR/s3rver.log)
stop(info)

s3rver checks SigV4 signatures (a wrong secret gets 403 SignatureDoesNotMatch)
with the keys S3RVER/S3RVER. It runs under `node --openssl-legacy-provider`
(its listing continuation tokens use DES; the node is common.node()) with cwd
tests/tools so require() finds the package; Popen runs node itself (no
shell), so the pid is node's.
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
import urllib.error
import urllib.request

from common import free_port, log_tail, node, port_open, serve_forever, spawn, stop_pids, wait_ready

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.path.join(ROOT, "tests", "tools")
WRAPPER = os.path.join(TOOLS, "s3rver.js")
PACKAGE = os.path.join(TOOLS, "node_modules", "@20minutes", "s3rver")
BUCKET = "litesafe-test"
REGION = "us-east-1"
ACCESS_KEY = "S3RVER"
SECRET_KEY = "S3RVER"
READY_TIMEOUT = 30.0


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


def _repair(data):
    """Undo what a SIGKILL of s3rver mid-PUT leaves in its store. s3rver
    writes an object's body, then its .md5, then its metadata JSON, in
    place: a kill in between leaves an object without (whole) metadata, and
    from then on every listing of the bucket fails with HTTP 500. A real
    object store never shows such an object, so the half-stored object is
    removed, as S3 would never have stored it. (A body cut short under
    older, whole metadata stays: litesafe must cope with that itself.)"""
    import json
    for d, _, files in os.walk(data):
        for f in files:
            if not f.endswith("._S3rver_object"):
                continue
            obj = os.path.join(d, f)
            meta = obj[:-len("object")] + "metadata.json"
            try:
                with open(meta) as m:
                    json.load(m)
                continue
            except (OSError, ValueError):
                pass
            for path in (obj, obj + ".md5", meta):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass


def start(workdir, port=None, quiet=True):
    """Start s3rver (on `port` if given, else a free one) with its data in
    workdir/data; wait until it listens and the bucket exists. quiet=False
    drops s3rver's -s (--silent): it then logs every request to its log."""
    if not os.path.exists(WRAPPER) or not os.path.isdir(PACKAGE):
        raise RuntimeError("%s or %s missing: run scripts/deps.sh" % (WRAPPER, PACKAGE))
    workdir = os.path.abspath(workdir)
    data = os.path.join(workdir, "data")
    os.makedirs(data, exist_ok=True)
    _repair(data)
    port = port or free_port()
    if port_open(port):  # s3rver exits quietly when it cannot bind
        raise RuntimeError("s3rver: port %d is already in use" % port)
    log_path = os.path.join(workdir, "s3rver.log")
    # Not quiet: FORCE_COLOR, as s3rver cuts the first 16 characters of each
    # request line, which are only the "  --> " arrow when it is colored.
    proc = spawn([node(), "--openssl-legacy-provider", WRAPPER, "-d", data, "-a", "127.0.0.1",
                  "-p", str(port)] + (["-s"] if quiet else []), log_path, cwd=TOOLS,
                 env=None if quiet else {"FORCE_COLOR": "1"})
    info = {"pids": [proc.pid], "port": port, "workdir": workdir, "log": log_path,
            "env": {"LS_TEST_S3_ENDPOINT": "http://127.0.0.1:%d" % port,
                    "LS_TEST_S3_BUCKET": BUCKET,
                    "LS_TEST_S3_REGION": REGION,
                    "LS_TEST_S3_ACCESS_KEY": ACCESS_KEY,
                    "LS_TEST_S3_SECRET_KEY": SECRET_KEY}}
    try:
        wait_ready(proc, "s3rver", port, log_path, READY_TIMEOUT)
        st, body = signed_request(port, "PUT", "/" + BUCKET)
        if st != 200 and b"BucketAlreadyOwnedByYou" not in body and b"BucketAlreadyExists" not in body:
            raise RuntimeError("s3rver: create bucket %s: HTTP %d %s; log tail:\n%s"
                               % (BUCKET, st, body[:300], log_tail(log_path)))
    except BaseException:
        stop(info)
        raise
    return info


def stop(info):
    """SIGTERM node (its own process group), wait up to 5 s, then SIGKILL."""
    stop_pids(info.get("pids", []))


if __name__ == "__main__":
    # Manual use: s3_server.py DIR -> starts, prints the env, stops on ^C or SIGTERM.
    serve_forever(start, stop, "/tmp/s3-server")
