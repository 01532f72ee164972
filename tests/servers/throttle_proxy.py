"""An HTTP proxy for tests that puts a real server (s3rver, azurite) behind
a switch: forwarding (the default), or answering every request with what a
throttled object store answers, HTTP 429 with S3's SlowDown error, while the
server behind stays untouched.

    p = ThrottleProxy("http://127.0.0.1:PORT").start()
    p.url                  -> http://127.0.0.1:PROXYPORT, the endpoint to give clients
    p.throttle = True      -> every request gets 429 (the body is read and dropped)
    p.throttled, p.passed  -> how many requests got each answer
    p.stop()

Requests are forwarded with their own Host header, so SigV4 signatures made
for the proxy's address check out at the server. Bodies are read whole
(Content-Length or chunked) before they are sent on: fine for test objects.
"""
import http.client
import http.server
import threading
import urllib.parse

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            b'<Message>Please reduce your request rate.</Message></Error>')
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-connection", "content-length"}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _reply(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _any(self):
        proxy = self.server.proxy
        body = self._body()
        if proxy.throttle:
            with proxy.lock:
                proxy.throttled += 1
            self._reply(429, [("Content-Type", "application/xml"), ("Retry-After", "1")],
                        SLOWDOWN)
            return
        up = http.client.HTTPConnection(proxy.host, proxy.port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            try:
                up.request(self.command, self.path, body=body, headers=headers)
                resp = up.getresponse()
                data = resp.read()
            except OSError:
                # The server behind is down: the client sees its connection
                # closed with no reply, as it would from a dead server.
                self.close_connection = True
                return
            with proxy.lock:
                proxy.passed += 1
            self._reply(resp.status, resp.getheaders(), data)
        finally:
            up.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any


class ThrottleProxy:
    def __init__(self, upstream):
        u = urllib.parse.urlsplit(upstream)
        self.host, self.port = u.hostname, u.port
        self.throttle = False
        self.throttled = 0
        self.passed = 0
        self.lock = threading.Lock()
        self._srv = None

    def start(self):
        self._srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._srv.daemon_threads = True
        self._srv.proxy = self
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self._srv.server_address[1]

    def stop(self):
        if self._srv:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None
