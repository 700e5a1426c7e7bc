#!/usr/bin/env python3
"""Serves the built console and forwards the node's routes to it, for development and for the
browser tests until the binary serves the page itself.

Usage: web/dev_server.py OUT_DIR KGFLOW_URL [PORT]   (PORT 0 or absent: a free port)
Prints "DEV_SERVER_LISTENING http://127.0.0.1:PORT" once it accepts connections.
/api/*, /metrics, /healthz and /readyz go to KGFLOW_URL (method, headers and body as sent;
a node that does not answer is a 502); anything else is a file of OUT_DIR (/ is index.html).
"""
import functools
import http.client
import http.server
import sys
import urllib.parse

FORWARDED_EXACT = ("/metrics", "/healthz", "/readyz")
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization", "host"}


class Handler(http.server.SimpleHTTPRequestHandler):
    upstream = None

    def log_message(self, fmt, *args):  # quiet: tests read stdout for the ready line only
        pass

    def _forward(self):
        u = self.upstream
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
            conn.request(self.command, self.path, body=body, headers=headers)
            res = conn.getresponse()
        except OSError as e:
            msg = ('{"error": "node unreachable: %s"}' % str(e).replace('"', "'")).encode()
            self.send_response(502)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        self.send_response(res.status, res.reason)
        for k, v in res.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        streaming = res.getheader("Content-Type", "").startswith("text/event-stream")
        if streaming:
            self.send_header("Connection", "close")
            self.end_headers()
            while True:
                chunk = res.read1(65536)
                if not chunk:
                    break
                self.wfile.write(chunk)
                self.wfile.flush()
        else:
            data = res.read()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        conn.close()

    def _forwarded(self):
        path = self.path.split("?", 1)[0]
        return path.startswith("/api/") or path in FORWARDED_EXACT

    def _route(self, fallback):
        if self._forwarded():
            self._forward()
        else:
            fallback()

    def do_GET(self):
        self._route(super().do_GET)

    def do_HEAD(self):
        self._route(super().do_HEAD)

    def do_POST(self):
        self._route(lambda: self.send_error(405))

    def do_PUT(self):
        self._route(lambda: self.send_error(405))

    def do_DELETE(self):
        self._route(lambda: self.send_error(405))

    def end_headers(self):
        if not self._forwarded():
            self.send_header("Cache-Control", "no-store")
        super().end_headers()


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    out_dir, url = sys.argv[1], sys.argv[2]
    port = int(sys.argv[3]) if len(sys.argv) == 4 else 0
    Handler.upstream = urllib.parse.urlparse(url)
    Handler.extensions_map = {**Handler.extensions_map, ".js": "text/javascript", ".mjs": "text/javascript"}
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=out_dir))
    print("DEV_SERVER_LISTENING http://127.0.0.1:%d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
