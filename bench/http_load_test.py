#!/usr/bin/env python3
"""Tests of bench/http_load against a scripted HTTP server (asyncio, stdlib only) whose answers
and counts are known: the figures the API benchmarks quote are only as good as this tool.

  http_load_test.py PATH/TO/http_load

The server listens on 127.0.0.1, a port chosen free, and runs in this process; each test starts
http_load as a child with a bound on its run time.
"""
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

LOAD = None  # set from argv

HEADER_TIMEOUT = 1.0  # the scripted server closes a connection whose headers are not in by then


class ScriptedServer:
    """Paths: /cl (Content-Length), /chunked (with a chunk extension and a trailer), /close
    (Connection: close), /eof (body until close), /drop (closes without answering), /echo-len
    (200 if the body's length matches Content-Length, else 400). A request's headers must be in
    HEADER_TIMEOUT after its first byte; a connection with no request for `idle_timeout` is
    closed. Counts requests per path, connections and their peer addresses."""

    def __init__(self, idle_timeout=30.0):
        self.idle_timeout = idle_timeout
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.lock = threading.Lock()
        self.requests = {}
        self.peers = {}
        self.connections = 0
        self.header_timeouts = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("scripted server did not start")

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.stopping = self.loop.create_future()
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self):
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=4096, limit=1 << 20)
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        await self.stopping
        server.close()
        # Every connection's task ends (closing its socket) before the loop does.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    def stop(self):
        self.loop.call_soon_threadsafe(self.stopping.set_result, None)
        self.thread.join(10)

    def counts(self):
        with self.lock:
            return dict(self.requests), dict(self.peers), self.connections, self.header_timeouts

    async def _serve(self, reader, writer):
        peer = writer.get_extra_info("peername")[0]
        with self.lock:
            self.connections += 1
            self.peers[peer] = self.peers.get(peer, 0) + 1
        try:
            while True:
                try:
                    first = await asyncio.wait_for(reader.read(1), self.idle_timeout)
                except (asyncio.TimeoutError, ConnectionError):
                    return
                if not first:
                    return
                try:
                    head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEADER_TIMEOUT)
                except asyncio.TimeoutError:
                    with self.lock:
                        self.header_timeouts += 1
                    return
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                with self.lock:
                    self.requests[path] = self.requests.get(path, 0) + 1
                if path == "/cl":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}")
                elif path == "/chunked":
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"5\r\n{\"sta\r\na;ext=1\r\ntus\":\"ok\"}\r\n0\r\nX-Trailer: 1\r\n\r\n")
                elif path == "/close":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                    await writer.drain()
                    return
                elif path == "/eof":
                    writer.write(b"HTTP/1.1 200 OK\r\n\r\nbody until the end")
                    await writer.drain()
                    return
                elif path == "/drop":
                    return
                elif path == "/echo-len":
                    ok = method == "POST" and len(body) == length and length > 0
                    writer.write(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % (200 if ok else 400))
                else:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


def run(args, timeout=60, expect_rc=0):
    p = subprocess.run([LOAD] + args, capture_output=True, text=True, timeout=timeout)
    if expect_rc is not None and p.returncode != expect_rc:
        raise AssertionError(f"http_load {' '.join(args)} exited {p.returncode}, not {expect_rc}: {p.stderr}")
    return json.loads(p.stdout) if p.stdout.strip() else None, p


class HttpLoadTest(unittest.TestCase):
    def setUp(self):
        self.server = ScriptedServer()
        self.port = str(self.server.port)

    def tearDown(self):
        self.server.stop()

    def rate(self, path, clients=4, extra=()):
        r, _ = run(["rate", "--port", self.port, "--clients", str(clients), "--seconds", "1", "--path", path]
                   + list(extra))
        return r

    # Verifies a Content-Length answer is read whole and every answer counted: the server's own
    # count of requests equals the tool's, give or take the ones in flight at the deadline.
    def test_rate_content_length_counts_every_answer(self):
        r = self.rate("/cl")
        served = self.server.counts()[0].get("/cl", 0)
        self.assertGreater(r["requests"], 50)
        self.assertEqual(r["status"], {"200": r["requests"]})
        self.assertEqual((r["errors"], r["reconnects"], r["connects"]), (0, 0, 4))
        self.assertTrue(r["requests"] <= served <= r["requests"] + 4, (r["requests"], served))
        self.assertLessEqual(r["latency_us"]["p50"], r["latency_us"]["p99"])
        self.assertLessEqual(r["latency_us"]["p99"], r["latency_us"]["max"])

    # Verifies a chunked answer with an extension and a trailer ends where it should: the next
    # request on the same connection is answered (a misparse would hang or fail it).
    def test_rate_chunked_keeps_the_connection(self):
        r = self.rate("/chunked")
        self.assertGreater(r["requests"], 50)
        self.assertEqual((r["errors"], r["reconnects"], r["timeouts"]), (0, 0, 0))

    # Verifies "Connection: close" and a body ending at close: each answer counted, the client
    # reconnects (counted), and neither is an error.
    def test_rate_close_and_eof_reconnect(self):
        for path in ("/close", "/eof"):
            r = self.rate(path, clients=2)
            self.assertGreater(r["requests"], 20, path)
            self.assertEqual(r["errors"], 0, path)
            self.assertGreaterEqual(r["reconnects"], r["requests"] - 2, path)
            self.assertEqual(r["status"], {"200": r["requests"]}, path)

    # Verifies a connection closed with a request in flight is an error, not an answer.
    def test_rate_drop_is_an_error(self):
        r = self.rate("/drop", clients=2)
        self.assertEqual(r["requests"], 0)
        self.assertGreater(r["errors"], 10)

    # Verifies the POST body goes out whole with its Content-Length and Content-Type.
    def test_rate_post_sends_the_body(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(json.dumps({"text": "x" * 3000}))
        try:
            r = self.rate("/echo-len", extra=["--method", "POST", "--body-file", f.name])
        finally:
            os.unlink(f.name)
        self.assertGreater(r["requests"], 20)
        self.assertEqual(r["status"], {"200": r["requests"]})

    # Verifies a refused port is a runtime failure (exit 1), retried without spinning.
    def test_rate_unreachable_exits_1(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        r, _ = run(["rate", "--port", str(port), "--clients", "2", "--seconds", "1"], expect_rc=1)
        self.assertEqual(r["connected_ever"], 0)
        # Two clients retrying every 10 ms for a second: a few hundred attempts, not tens of thousands.
        self.assertLess(r["connects"], 1000)

    # Verifies bad arguments are usage errors (exit 2) naming the option.
    def test_usage_errors_exit_2(self):
        for args in (["nope"], ["rate", "--port", self.port, "--clients", "0", "--seconds", "1"],
                     ["rate", "--port", self.port, "--clients", "1"],
                     ["slow", "--port", self.port, "--probe-seconds", "1", "--source-from", "10.0.0.1"],
                     ["idle", "--port", self.port, "--connections", "1", "--bogus", "1"]):
            _, p = run(args, expect_rc=2)
            self.assertIn("http_load:", p.stderr)

    # Verifies the slow-client load: stalled connections come from the rotated source addresses,
    # the server's header timeout closes each of them and the tool times that close from their
    # last byte; idle ones are answered and kept; probes come from 127.0.0.1 and are answered.
    def test_slow_counts_server_closes(self):
        r, _ = run(["slow", "--port", self.port, "--stall", "30", "--idle", "6", "--trickle", "2",
                    "--probe-seconds", "2", "--source-count", "10", "--no-reopen",
                    "--probe-path", "/cl", "--probe-path", "/chunked"], timeout=60)
        _, peers, _, header_timeouts = self.server.counts()
        stall = r["slow_connections"]["stall"]
        self.assertEqual((stall["connected"], stall["closed_by_server"]), (30, 30))
        self.assertGreaterEqual(header_timeouts, 30)
        self.assertGreater(stall["closed_after_s_median"], HEADER_TIMEOUT * 0.8)
        self.assertLess(stall["closed_after_s_max"], HEADER_TIMEOUT + 1.5)
        idle = r["slow_connections"]["idle"]
        self.assertEqual((idle["answered"], idle["closed_by_server"], idle["open_at_end"]), (6, 0, 6))
        # The trickling ones send a byte a second: their headers were in, so they stay open.
        self.assertEqual(r["slow_connections"]["trickle"]["open_at_end"], 2)
        self.assertEqual({f"127.0.0.{i}" for i in range(2, 12)}, set(peers) - {"127.0.0.1"})
        for phase in ("idle_server", "under_load"):
            for path in ("/cl", "/chunked"):
                p = r[phase][path]
                self.assertGreaterEqual(p["count"], 15, (phase, path))
                self.assertEqual(p["status"], {"200": p["count"]}, (phase, path))
                self.assertEqual((p["failures"], p["timeouts"]), (0, 0), (phase, path))
        # Only probes (two paths, about 20 each per phase) came from 127.0.0.1.
        self.assertLessEqual(peers.get("127.0.0.1", 0), 2 * 2 * 21)

    # Verifies a closed stalled connection is reopened (the load holds) unless --no-reopen.
    def test_slow_reopens_closed_connections(self):
        r, _ = run(["slow", "--port", self.port, "--stall", "5", "--probe-seconds", "3",
                    "--probe-path", "/cl"], timeout=60)
        stall = r["slow_connections"]["stall"]
        self.assertGreaterEqual(stall["closed_by_server"], 10)
        self.assertEqual(stall["connects"], 5 + stall["closed_by_server"])

    # Verifies the idle mode holds its connections open and says so before its hold.
    def test_idle_holds_connections(self):
        p = subprocess.run([LOAD, "idle", "--port", self.port, "--connections", "300", "--source-count", "3",
                            "--hold-seconds", "0"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        r = json.loads(p.stdout)
        self.assertIn("http_load: holding 300 open", p.stderr)
        self.assertEqual((r["connected"], r["answered"], r["still_open"]), (300, 300, 300))
        self.assertEqual(r["status"], {"404": 300})
        requests, peers, _, _ = self.server.counts()
        self.assertEqual(requests.get("/healthz"), 300)
        self.assertEqual(set(peers), {"127.0.0.2", "127.0.0.3", "127.0.0.4"})



class IdleTimeoutTest(unittest.TestCase):
    def setUp(self):
        self.server = ScriptedServer(idle_timeout=1.0)
        self.port = str(self.server.port)

    def tearDown(self):
        self.server.stop()

    # Verifies connections the server closes during the hold are not reported open.
    def test_idle_counts_closes_during_hold(self):
        r, _ = run(["idle", "--port", self.port, "--connections", "20", "--hold-seconds", "3"])
        self.assertEqual(r["answered"], 20)
        self.assertEqual((r["closed_during_hold"], r["still_open"]), (20, 0))

    # Verifies an idle keep-alive connection's close is timed from the answer it got.
    def test_slow_times_idle_close_from_the_answer(self):
        r, _ = run(["slow", "--port", self.port, "--idle", "4", "--probe-seconds", "2", "--no-reopen",
                    "--probe-path", "/cl"], timeout=60)
        idle = r["slow_connections"]["idle"]
        self.assertEqual((idle["answered"], idle["closed_by_server"]), (4, 4))
        self.assertGreater(idle["closed_after_s_median"], 0.8)
        self.assertLess(idle["closed_after_s_max"], 2.0)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    LOAD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
