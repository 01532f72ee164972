#!/usr/bin/env python3
"""Azure Blob Storage test server: azurite-blob (npm azurite@3.35.0, installed
in tests/tools by scripts/deps.sh, run by common.node()) on a free 127.0.0.1
port, data under WORKDIR/data, output in WORKDIR/azurite.log.

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
import urllib.error
import urllib.request

from common import free_port, log_tail, node, serve_forever, spawn, stop_pids, wait_ready

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
AZURITE = os.path.join(ROOT, "tests", "tools", "node_modules", ".bin", "azurite-blob")
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "litesafe-test"
VERSION = "2021-08-06"
READY_TIMEOUT = 30.0


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
    port = port or free_port()
    log_path = os.path.join(workdir, "azurite.log")
    # node runs the script itself (its #! line would take the node on PATH)
    proc = spawn([node(), AZURITE, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", data,
                  "--disableTelemetry", "--skipApiVersionCheck"], log_path, cwd=workdir)
    info = {"pids": [proc.pid], "port": port, "workdir": workdir, "log": log_path,
            "env": {"LS_TEST_ABS_ENDPOINT": "http://127.0.0.1:%d/%s" % (port, ACCOUNT),
                    "LS_TEST_ABS_ACCOUNT": ACCOUNT,
                    "LS_TEST_ABS_KEY": KEY,
                    "LS_TEST_ABS_CONTAINER": CONTAINER}}
    try:
        wait_ready(proc, "azurite", port, log_path, READY_TIMEOUT)
        st = signed_request(port, "PUT", "/" + CONTAINER, {"restype": "container"})
        if st not in (201, 409):
            raise RuntimeError("azurite: create container %s: HTTP %d; log tail:\n%s"
                               % (CONTAINER, st, log_tail(log_path)))
    except BaseException:
        stop(info)
        raise
    return info


def stop(info):
    """SIGTERM azurite (its process group: the .bin entry may be a wrapper),
    wait up to 5 s, then SIGKILL."""
    stop_pids(info.get("pids", []))


if __name__ == "__main__":
    # Manual use: abs_server.py DIR -> starts, prints the env, stops on ^C or SIGTERM.
    serve_forever(start, stop, "/tmp/abs-server")
