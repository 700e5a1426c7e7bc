#!/usr/bin/env python3
"""A fake OpenAI-compatible chat-completions server: the LLM peer of kgflow's tests and benchmarks.

Answers POST /v1/chat/completions with a deterministic knowledge graph read off the first user
message (the "chunk text"), or misbehaves when that text carries a FAKE_* marker (see MARKERS).
GET /stats, POST /reset and POST /config let a test see and steer it. The full contract is in
tests/testing/fake_llm.h, whose FakeLlm class starts this script for gtest.

Python 3 standard library only; one asyncio loop serves every connection (HTTP/1.1 keep-alive,
Content-Length bodies), so hundreds of slow requests can be in flight at once.
"""

import argparse
import asyncio
import collections
import hashlib
import json
import math
import os
import random
import re
import resource
import signal
import sys
import time

# Marker -> what it does; the first marker found in the chunk text wins. *_ONCE markers misbehave
# on the first request carrying a given chunk text only, then answer normally.
MARKERS = [
    "FAKE_429_ONCE",  # 429, Retry-After: 1
    "FAKE_429_MS_ONCE",  # 429, retry-after-ms: 300
    "FAKE_500_ONCE",  # 500
    "FAKE_503_ALWAYS",  # 503
    "FAKE_HANG_ONCE",  # reads the request, never answers
    "FAKE_GARBAGE",  # "I cannot help with that."
    "FAKE_GARBAGE_ONCE",
    "FAKE_FENCED",  # the JSON in ```json fences
    "FAKE_THINK",  # <think>...</think> before the JSON
    "FAKE_PROSE",  # prose around the JSON
    "FAKE_TRAILING_COMMA",  # trailing commas in every array and object
    "FAKE_TRUNCATED_ONCE",  # half the JSON, finish_reason "length"
    "FAKE_WRONG_SCHEMA",  # {"nodes":[...],"edges":[...]}
    "FAKE_EMPTY",  # content ""
    "FAKE_BAD_RECORDS",  # plus an entity with no name and a relation to a non-entity
    "FAKE_INSUFFICIENT_QUOTA",  # 429 insufficient_quota (not worth retrying)
    "FAKE_NOTHING",  # no entities, no relations
]
# Longest first, so FAKE_GARBAGE_ONCE is not read as FAKE_GARBAGE; re.search finds the earliest.
MARKER_RE = re.compile("|".join(sorted(MARKERS, key=len, reverse=True)))

STOP_WORDS = {"The", "A", "An", "In", "On", "It", "He", "She", "They", "This", "That"}
ORG_SUFFIXES = {"Inc", "Corp", "Labs", "Group", "Company", "Ltd"}
SENTENCE_RE = re.compile(r"[^.!?。！？]+[.!?。！？]?")
WORD_RE = re.compile(r"[A-Za-z0-9_]+")
CAPITALISED_RE = re.compile(r"[A-Z][A-Za-z]+")
# 2-4 CJK characters before 公司, none of them a particle that usually ends the word before a name.
CJK_COMPANY_RE = re.compile(r"(?:(?![了和与及的在是从向对把被给跟同])[\u4e00-\u9fff]){2,4}公司")

CHAT_PATHS = {"/v1/chat/completions", "/chat/completions"}


# ---------------------------------------------------------------------------------------------
# The normal answer


def sentence_entities(sentence):
    """Entity names of one sentence, in order, each once: runs of capitalised words, or CJK
    company names."""
    names = [m.group(0) for m in CJK_COMPANY_RE.finditer(sentence)]
    run, run_end = [], 0
    for m in WORD_RE.finditer(sentence):
        word = m.group(0)
        if run and sentence[run_end:m.start()].strip(" ") != "":  # a run is words apart by spaces only
            names.append(" ".join(run))
            run = []
        if CAPITALISED_RE.fullmatch(word) and (run or word not in STOP_WORDS):
            run.append(word)
            run_end = m.end()
        elif run:
            names.append(" ".join(run))
            run = []
    if run:
        names.append(" ".join(run))
    return list(dict.fromkeys(names))


def entity_type(name):
    if name.endswith("公司") or name.split(" ")[-1] in ORG_SUFFIXES:
        return "Organization"
    return "Person"


def extract(chunk):
    """The deterministic graph of `chunk`: {"entities": [...], "relations": [...]}."""
    entities, relations = {}, []
    for m in SENTENCE_RE.finditer(chunk):
        sentence = m.group(0).strip()
        names = sentence_entities(sentence)
        for name in names:
            if name not in entities:
                kind = entity_type(name)
                entities[name] = {"name": name, "type": kind, "description": f"{name}, named in the text"}
        if len(names) >= 2:
            relations.append({"source": names[0], "target": names[1], "type": "RELATED_TO",
                              "description": sentence, "evidence": sentence})
    return {"entities": list(entities.values()), "relations": relations}


def with_trailing_commas(v):
    if isinstance(v, dict):
        return "{" + "".join(f"{json.dumps(k, ensure_ascii=False)}: {with_trailing_commas(x)}, " for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + "".join(f"{with_trailing_commas(x)}, " for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


def dumps(v):
    return json.dumps(v, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# The server


class Reply:
    """What a request gets: a status, headers and a JSON body, or nothing at all (hang)."""

    def __init__(self, status, body, headers=None, hang=False):
        self.status, self.body, self.headers, self.hang = status, body, headers or {}, hang


class FakeLlm:
    def __init__(self, args):
        self.latency_ms = args.latency_ms
        self.jitter_ms = args.jitter_ms
        self.rpm_limit = args.rpm_limit
        self.api_key = args.api_key
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.started = time.monotonic()
        self.next_id = 0
        self.in_flight = 0
        self.reset()

    def reset(self):
        """Starts the counters over; requests in flight stay counted until they end."""
        self.requests = 0
        self.max_in_flight = self.in_flight
        self.by_status = collections.Counter()
        self.arrivals = []
        self.by_marker = collections.Counter()
        self.auth = {}  # dict as an ordered set
        self.once_done = set()  # sha256 of chunk texts whose ONCE misbehaviour happened
        self.admitted = collections.deque()  # monotonic times of the requests the rpm limit let in

    def stats(self):
        return {"requests": self.requests, "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())}, "arrivals": self.arrivals,
                "by_marker": dict(self.by_marker), "auth": list(self.auth)}

    def configure(self, cfg):
        self.latency_ms = int(cfg.get("latency_ms", self.latency_ms))
        self.jitter_ms = int(cfg.get("jitter_ms", self.jitter_ms))
        self.rpm_limit = int(cfg.get("rpm_limit", self.rpm_limit))

    def rpm_admits(self):
        """Counts this request against the 60 s sliding window; False when it would exceed it."""
        if self.rpm_limit <= 0:
            return True
        now = time.monotonic()
        while self.admitted and now - self.admitted[0] >= 60:
            self.admitted.popleft()
        if len(self.admitted) >= self.rpm_limit:
            return False
        self.admitted.append(now)
        return True

    def once(self, chunk):
        """True the first time `chunk` is seen (since the last reset)."""
        key = hashlib.sha256(chunk.encode()).hexdigest()
        if key in self.once_done:
            return False
        self.once_done.add(key)
        return True

    def chat(self, headers, body):
        """The reply to a chat-completions request."""
        authorization = headers.get("authorization")
        if authorization is not None:
            self.auth[authorization] = True
        if self.api_key and authorization != f"Bearer {self.api_key}":
            return Reply(401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}})
        try:
            req = json.loads(body)
            messages = req["messages"]
        except (ValueError, KeyError, TypeError):
            return Reply(400, {"error": {"message": "invalid request body", "type": "invalid_request_error"}})
        if not self.rpm_admits():
            return Reply(429, {"error": {"message": "Rate limit reached (rpm)", "type": "rate_limit_exceeded"}},
                         {"Retry-After": "1"})
        contents = [m.get("content") if isinstance(m.get("content"), str) else "" for m in messages]
        chunk = next((c for m, c in zip(messages, contents) if m.get("role") == "user"), "")
        prompt_bytes = sum(len(c.encode()) for c in contents)
        found = MARKER_RE.search(chunk)
        marker = found.group(0) if found else None
        if marker:
            self.by_marker[marker] += 1
        if marker and marker.endswith("_ONCE") and not self.once(chunk):
            marker = None

        rate_limited = {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}}
        if marker == "FAKE_429_ONCE":
            return Reply(429, rate_limited, {"Retry-After": "1"})
        if marker == "FAKE_429_MS_ONCE":
            return Reply(429, rate_limited, {"retry-after-ms": "300"})
        if marker == "FAKE_500_ONCE":
            return Reply(500, {"error": {"message": "internal"}})
        if marker == "FAKE_503_ALWAYS":
            return Reply(503, {"error": {"message": "unavailable"}})
        if marker == "FAKE_INSUFFICIENT_QUOTA":
            return Reply(429, {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                                         "code": "insufficient_quota"}})
        if marker == "FAKE_HANG_ONCE":
            return Reply(0, None, hang=True)

        graph = extract(chunk)
        finish = "stop"
        if marker in ("FAKE_GARBAGE", "FAKE_GARBAGE_ONCE"):
            content = "I cannot help with that."
        elif marker == "FAKE_FENCED":
            content = "```json\n" + dumps(graph) + "\n```"
        elif marker == "FAKE_THINK":
            content = "<think>let me think {not json}</think>" + dumps(graph)
        elif marker == "FAKE_PROSE":
            content = "Here is the graph:\n" + dumps(graph) + "\nHope this helps."
        elif marker == "FAKE_TRAILING_COMMA":
            content = with_trailing_commas(graph)
        elif marker == "FAKE_TRUNCATED_ONCE":
            full = dumps(graph)
            content, finish = full[:len(full) // 2], "length"
        elif marker == "FAKE_WRONG_SCHEMA":
            content = dumps({"nodes": graph["entities"], "edges": graph["relations"]})
        elif marker == "FAKE_EMPTY":
            content = ""
        elif marker == "FAKE_BAD_RECORDS":
            source = graph["entities"][0]["name"] if graph["entities"] else "Someone"
            graph["entities"].append({"type": "Person", "description": "an entity with no name"})
            graph["relations"].append({"source": source, "target": "Nobody Named Here", "type": "RELATED_TO",
                                       "description": "a relation whose target is not an entity", "evidence": ""})
            content = dumps(graph)
        elif marker == "FAKE_NOTHING":
            content = dumps({"entities": [], "relations": []})
        else:
            content = dumps(graph)

        self.next_id += 1
        p, c = math.ceil(prompt_bytes / 4), math.ceil(len(content) / 4)
        return Reply(200, {"id": f"fake-{self.next_id}", "object": "chat.completion", "model": req.get("model", ""),
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                        "finish_reason": finish}],
                           "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}})

    async def handle(self, method, path, headers, body, reader):
        """The reply to one request; every one but /stats, /reset and /config is counted and waits the
        configured latency (a hang excepted)."""
        if path == "/stats" and method == "GET":
            return Reply(200, self.stats())
        if path == "/reset" and method == "POST":
            self.reset()
            return Reply(200, {})
        if path == "/config" and method == "POST":
            try:
                self.configure(json.loads(body or b"{}"))
            except (ValueError, TypeError, AttributeError):
                return Reply(400, {"error": {"message": "invalid config"}})
            return Reply(200, {})

        self.requests += 1
        self.arrivals.append(round(time.monotonic() - self.started, 6))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        reply = None
        try:
            if path in CHAT_PATHS and method == "POST":
                reply = self.chat(headers, body)
            else:
                reply = Reply(404, {"error": {"message": f"no route {method} {path}"}})
            if reply.hang:
                # Held open until the client gives up (EOF) or 600 s pass; the connection ends then.
                try:
                    await asyncio.wait_for(reader.read(), 600)
                except (asyncio.TimeoutError, ConnectionError):
                    pass
                return reply
            delay = self.latency_ms + random.uniform(0, self.jitter_ms)
            if delay > 0:
                await asyncio.sleep(delay / 1000)
            self.by_status[reply.status] += 1
            return reply
        finally:
            self.in_flight -= 1
            if self.log:
                status = "error" if reply is None else "hang" if reply.hang else reply.status
                self.log.write(f"{time.monotonic() - self.started:.3f} {method} {path} {status}\n")

    async def serve_connection(self, reader, writer):
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    return
                method, target, version = parts
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                try:
                    body = await reader.readexactly(length) if length else b""
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                reply = await self.handle(method, target.split("?", 1)[0], headers, body, reader)
                if reply.hang:
                    return
                conn = headers.get("connection", "").lower()
                keep = conn != "close" if version == "HTTP/1.1" else conn == "keep-alive"
                payload = dumps(reply.body).encode()
                out = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}",
                       "Content-Type: application/json", f"Content-Length: {len(payload)}",
                       "Connection: " + ("keep-alive" if keep else "close")]
                out += [f"{k}: {v}" for k, v in reply.headers.items()]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + payload)
                try:
                    await writer.drain()
                except ConnectionError:
                    return
                if not keep:
                    return
        finally:
            writer.close()


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--jitter-ms", type=int, default=0)
    ap.add_argument("--api-key", default="")
    ap.add_argument("--rpm-limit", type=int, default=0)
    ap.add_argument("--log")
    ap.add_argument("--max-seconds", type=float, default=3600)
    args = ap.parse_args()
    parent = os.getppid()  # before the port file: whoever waits for it may exit right after

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # room for many connections
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536, hard))

    fake = FakeLlm(args)
    server = await asyncio.start_server(fake.serve_connection, "127.0.0.1", args.port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    tmp = f"{args.port_file}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, args.port_file)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    deadline = time.monotonic() + args.max_seconds
    while not stop.is_set() and os.getppid() == parent and time.monotonic() < deadline:
        try:
            await asyncio.wait_for(stop.wait(), 1)
        except asyncio.TimeoutError:
            pass
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
