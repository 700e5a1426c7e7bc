#!/usr/bin/env python3
# Verifies the web console (issue 13) in a real browser: a kgflow node with two builtin workers and
# a slow provider, documents submitted (one through the page), and through the page that workers,
# queues and tasks show the figures the API gives, that scaling changes the process count, that
# cancel and retry work, that a SIGKILLed worker shows its restart and last exit, that the graph
# explorer draws the neighbourhood of a searched entity, that the language switch changes labels,
# and that no console error occurs; a screenshot of each view is saved under --out and must not be
# blank; a node that goes away shows as unreachable, then live again. HarnessTest checks the
# harness itself (PNG decoding, blank and error detection, cleanup) and passes against any page.
#
# The page is read only through web/README.md's data-testid hooks and their data-* attributes
# (language independent), and a view is read once its root has data-ready="true"; the few texts
# read are numbers (task-count, scale-effective), the clamp reason naming its cap variable, a
# last exit naming SIGKILL, and the nav label before and after the language switch.
#
# Usage: /usr/bin/python3 tests/console/console_test.py --kgflow BUILD/kgflow --out DIR
#          [--dev-server web/dev_server.py --web BUILT_WEB_DIR] [unittest args]
# --dev-server serves a built console in front of the node (web/README.md: to test page changes
# without rebuilding the binary); without it the browser opens the node's own GET /, the
# console embedded at build time.
# Nodes of their own (TokenTest, WebNodeTest, FiguresNodeTest) cover what the shared node cannot
# show without disturbing the other tests: KG_API_TOKEN, NODE_ROLE=web, a second node going
# DOWN, a dead letter, the amber and full cap levels, a hidden tab.
# Debian's python3 (python3-selenium, chromium, chromium-driver from scripts/deps.sh).
import argparse
import glob
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import unittest
import urllib.parse
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = None  # parsed in main()
SUITE_DEADLINE_S = 240  # the whole run (about 95 s alone on 2 cores); SIGALRM ends it (cleanup included) past this
EXPIRED = False  # set when the deadline passed: the tests left fail at once
WAIT = 20  # seconds for one thing to show on the page (it polls every 3 s)

# Caps small enough that the page's figures against them are checkable.
NODE_ENV = {
    "KG_WORKERS_PER_PROVIDER": "2",
    "KG_MAX_PROCESSES_PER_PROVIDER": "4",
    "KG_MAX_TOTAL_PROCESSES": "10",
    "KG_CONCURRENCY_PER_PROCESS": "1",
    "KG_STOP_TIMEOUT_SECONDS": "2",  # a slow worker mid-chunk at the end is stopped, not waited for
    "KG_LEASE_SECONDS": "120",
}
# builtin: the extractor; slow: the same extractor after 60 s, so its task stays running.
CONFIG = "[providers.builtin]\n\n[providers.slow]\ndelay_ms = 60000\n"


def by(testid, extra=""):
    return f'[data-testid="{testid}"]{extra}'


def page_attr(driver, css, name):
    """Attribute `name` ("text": the text content) of the first element matching `css`, or None.
    One script per read: the page re-renders as it polls, and an element found by one WebDriver
    call may be gone by the next."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]);"
        "return e ? (arguments[1] === 'text' ? e.textContent.trim() : e.getAttribute(arguments[1])) : null;",
        css,
        name,
    )


# ---- PNG encoding for the decoder's own test ----------------------------------------------------


def _png(width, height, channels, rows, filters):
    """A PNG of `rows` with each row filtered by filters[y % len(filters)] (0..4)."""
    bpp, out, prev = channels, bytearray(), bytes(width * channels)
    for y, row in enumerate(rows):
        f = filters[y % len(filters)]
        line = bytearray(len(row))
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) >> 1
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[i] = (x - pred) & 255
        out += bytes([f]) + line
        prev = row

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colour = {3: 2, 4: 6}[channels]
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(bytes(out)))
        + chunk(b"IEND", b"")
    )


class HarnessTest(unittest.TestCase):
    """The harness: it must be able to fail (a blank screenshot, a console error) and leave nothing."""

    def test_png_decoder_reads_every_filter(self):
        # Verifies the zlib PNG decoder gives back the pixels for each of the five row filters.
        w, h = 37, 10
        rng = random.Random(13)  # noise, plus runs of equal bytes where the predictors tie
        for channels in (3, 4):
            rows = [bytes(rng.choice((rng.randrange(256), 0, 255, 128)) for _ in range(w * channels)) for _ in range(h)]
            for filters in ([0], [1], [2], [3], [4], [0, 1, 2, 3, 4]):
                _, _, ch, got = harness.png_decode(_png(w, h, channels, rows, filters))
                self.assertEqual(ch, channels)
                self.assertEqual(got, rows, f"channels {channels}, filters {filters}")
        solid = [bytes([10, 20, 30] * w)] * h
        self.assertEqual(harness.png_colour_count(_png(w, h, 3, solid, [1, 2])), 1)

    def test_browser_blank_page_and_console_error_are_caught_and_all_stops(self):
        # Verifies a solid page's screenshot is refused, a page with text passes, a console error
        # is seen as SEVERE, and quitting leaves no chromedriver or Chromium process alive.
        out = os.path.join(ARGS.out, "harness")
        b = harness.Browser(out)
        tree = []
        try:
            tree = [b.service.process.pid] + harness.descendants(b.service.process.pid) + b.daemons()
            self.assertTrue(any("chromium" in " ".join(harness.cmdline(p)) for p in tree), tree)
            b.driver.get("data:text/html,<body style='background:%23fff'></body>")
            with self.assertRaises(AssertionError):
                b.screenshot("blank")
            b.driver.get("data:text/html,<h1>kgflow</h1><p>some text on a page</p>")
            self.assertGreater(b.screenshot("text"), 8)
            self.assertEqual(b.severe(), [])
            b.driver.execute_script("console.error('deliberate harness error')")
            self.assertTrue(any("deliberate harness error" in e["message"] for e in b.severe()))
        finally:
            tree += harness.descendants(b.service.process.pid) + b.daemons()
            b.quit()
        self.assertEqual([p for p in tree if harness.alive(p)], [], "browser processes outlived quit()")

    def test_node_serves_a_page_and_stops_with_its_workers(self):
        # Verifies the node starts on its port with two workers, GET / answers HTML, and stop()
        # leaves neither the node nor a worker alive.
        d = tempfile.mkdtemp(prefix="kg-console-harness-")
        try:
            n = harness.Node(ARGS.kgflow, d, NODE_ENV)
            try:
                workers = harness.wait_for(lambda: len(n.worker_pids()) == 2 and n.worker_pids(), 10, "2 workers")
                status, body = n.request("GET", "/")
                self.assertEqual(status, 200)
                self.assertIn("<html", body.lower() if isinstance(body, str) else "")
            finally:
                killed = n.stop()
            self.assertEqual(killed, [], "the node needed SIGKILL")
            self.assertEqual([p for p in [n.proc.pid, *workers] if harness.alive(p)], [])
        finally:
            shutil.rmtree(d, ignore_errors=True)


class ConsoleTest(unittest.TestCase):
    """The console's views against one node (started once; each test sets up what it reads)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="kg-console-")
        cls.shots = os.path.join(ARGS.out, "console")
        with open(os.path.join(cls.dir, "kg.toml"), "w") as f:
            f.write(CONFIG)
        cls.node = harness.Node(ARGS.kgflow, cls.dir, {**NODE_ENV, "KG_CONFIG": os.path.join(cls.dir, "kg.toml")})
        cls.dev = None
        cls.browser = None
        cls.errors_seen = 0
        try:
            cls.base = cls.node.url
            if ARGS.dev_server:
                cls.dev = DevServer(ARGS.dev_server, ARGS.web, cls.node.url, cls.dir)
                cls.base = cls.dev.url
            harness.wait_for(lambda: len(cls.node.worker_pids()) == 4, 15, "4 worker processes")
            # The documents: every sample but one through the API (the page submits the last).
            cls.samples = sorted(glob.glob(os.path.join(os.path.abspath(ARGS.samples), "*.txt")))
            assert len(cls.samples) >= 2, f"no samples in {ARGS.samples}"
            cls.api_tasks = []
            for path in cls.samples[:-1]:
                with open(path) as f:
                    cls.api_tasks.append(cls.node.submit(f.read(), os.path.basename(path)))
            cls.browser = harness.Browser(cls.shots)
            # The console, not the old dashboard: fail once, clearly, instead of every view timing out.
            cls.browser.driver.get(cls.base + "/")
            try:
                cls.browser.wait(lambda: cls.browser.driver.find_elements("css selector", by("nav-cluster")), WAIT, "")
            except Exception:
                raise AssertionError(
                    f"{cls.base}/ does not serve the web console (no {by('nav-cluster')} within {WAIT} s): "
                    "the binary still serves the old dashboard (src/api/dashboard.h)?"
                ) from None
        except BaseException:
            cls._stop()
            raise

    @classmethod
    def _stop(cls):
        left = []
        if cls.browser:
            cls.browser.quit()
        if cls.dev:
            cls.dev.stop()
        tree = [cls.node.proc.pid, *harness.descendants(cls.node.proc.pid)]
        cls.node.stop()
        left = [p for p in tree if harness.alive(p)]
        if not ARGS.keep:
            shutil.rmtree(cls.dir, ignore_errors=True)
        return left

    @classmethod
    def tearDownClass(cls):
        left = cls._stop()
        if left:
            raise AssertionError(f"processes outlived the test: {left}")

    def setUp(self):
        if EXPIRED:
            self.fail(f"not run: the suite is over its {SUITE_DEADLINE_S} s")
        self.b = self.browser
        self.d = self.b.driver

    def tearDown(self):
        # No console error in any view (a SEVERE entry: an uncaught exception, console.error, a
        # failed load such as a missing favicon), since the previous test (the first test also
        # gets those of the first load in setUpClass).
        errors = self.b.severe()[type(self).errors_seen :]
        type(self).errors_seen += len(errors)
        self.assertEqual(errors, [], "browser console errors")

    # -- page helpers --
    def open(self, route, view):
        """Loads `route` (a hash route) and waits for `view`'s data-ready="true"."""
        self.d.get(self.base + "/" + route)
        return self.ready(view)

    def ready(self, view):
        self.wait(lambda: self.attr(by(view), "data-ready") == "true", f"{view} is data-ready")

    # Reads go through one script each: the page re-renders as it polls, and an element found by
    # one WebDriver call may be gone by the next.
    def attr(self, css, name):
        return page_attr(self.d, css, name)

    def rows(self, css, names, inner=()):
        """For each element matching `css`: its attributes `names`, and for each (testid, name) of
        `inner` that attribute of its first descendant with that data-testid (key "testid.name")."""
        return self.d.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map(e => {"
            "  const o = {};"
            "  for (const n of arguments[1]) o[n] = e.getAttribute(n);"
            "  for (const [t, n] of arguments[2]) {"
            "    const c = e.querySelector(`[data-testid=\"${t}\"]`);"
            "    o[t + '.' + n] = c ? (n === 'text' ? c.textContent.trim() : c.getAttribute(n)) : null;"
            "  }"
            "  return o; });",
            css,
            list(names),
            [list(x) for x in inner],
        )

    def count(self, css):
        return self.d.execute_script("return document.querySelectorAll(arguments[0]).length;", css)

    def click(self, css):
        """Clicks the first element matching `css` once it is there and enabled (found again if the
        page replaced it), and accepts a confirm() the page may ask."""

        def go():
            el = self.d.find_element("css selector", css)
            if not el.is_enabled():
                return False
            el.click()
            return True

        self.wait(go, f"click {css}")
        try:
            self.d.switch_to.alert.accept()
        except Exception:  # no dialog: nothing to accept
            pass

    def type(self, css, text):
        def go():
            el = self.d.find_element("css selector", css)
            el.clear()
            el.send_keys(text)
            return True

        self.wait(go, f"type into {css}")

    def wait(self, cond, what, timeout=WAIT):
        return self.b.wait(cond, timeout, what)

    def api_processes(self):
        w = self.node.get("/api/v1/workers")
        return {p["pid"]: p for n in w["nodes"] for p in n["processes"]}

    def page_processes(self):
        rows = self.rows(by("process-row"), ("data-pid", "data-provider", "data-state", "data-restarts"),
                         [("process-last-exit", "data-exit"), ("process-last-exit", "text")])
        return {
            int(r["data-pid"]): {
                "provider": r["data-provider"],
                "state": r["data-state"],
                "restarts": int(r["data-restarts"]),
                "last_exit": r["process-last-exit.data-exit"],
                "last_exit_text": r["process-last-exit.text"],
            }
            for r in rows
        }

    def wait_tasks_done(self, ids, timeout=30):
        harness.wait_for(
            lambda: all(self.node.get(f"/api/v1/tasks/{i}")["status"] == "done" for i in ids), timeout, "tasks done"
        )

    def unseen_neighbours(self, key, drawn):
        """The neighbours of `key` (GET /api/v1/graph/entities/KEY) not in `drawn`."""
        e = self.node.get("/api/v1/graph/entities/" + urllib.parse.quote(key, safe=""))
        return {n["entity"]["key"] for n in e["neighbours"]} - drawn

    def expands_to(self, target, nodes, action):
        """Runs `action` (an expand of `target`) and waits for the detail and the canvas's centre
        on `target` with `nodes` entities drawn."""
        canvas = by("graph-canvas")
        action()
        want = (target, target, str(nodes))
        self.wait(lambda: (self.attr(by("entity-detail"), "data-key"), self.attr(canvas, "data-center"),
                           self.attr(canvas, "data-nodes")) == want,
                  f"expanded {target}: detail and centre on it, {nodes} entities drawn")

    # -- the views --
    def test_cluster_shows_the_workers_of_the_api(self):
        # Verifies the cluster view lists the node (up) and each worker process with the pid,
        # provider, state and restarts GET /api/v1/workers gives (a slow task keeps one busy, so
        # states differ), per provider totals, and the total cap bar against KG_MAX_TOTAL_PROCESSES.
        self.wait_tasks_done(self.api_tasks)
        busy = self.node.submit("Ilse Brandt joined Sable Robotics.", "keeps-a-worker-busy", "slow")
        self.addCleanup(self.node.request, "POST", f"/api/v1/tasks/{busy}/cancel")
        harness.wait_for(lambda: any(p["state"] == "busy" for p in self.api_processes().values()), 15, "a busy worker")
        self.open("#/cluster", "view-cluster")

        def same():
            api = {pid: (p["provider"], p["state"], p["restarts"]) for pid, p in self.api_processes().items()}
            page = {pid: (p["provider"], p["state"], p["restarts"]) for pid, p in self.page_processes().items()}
            states = {s for _, s, _ in api.values()}
            return api == page and len(api) == 4 and "busy" in states and "idle" in states

        self.wait(same, "the page's processes (one busy, others idle) equal the API's")
        node = self.node.get("/api/v1/workers")["nodes"][0]
        rows = self.rows(by("node-row"), ("data-node", "data-state"), [("node-role", "text")])
        self.assertEqual(rows, [{"data-node": node["name"], "data-state": "up", "node-role.text": node["role"]}])
        for provider in ("builtin", "slow"):
            self.assertEqual(self.attr(by("provider-processes", f'[data-provider="{provider}"]'), "data-total"), "2")
        total = self.rows(by("cap-bar", '[data-cap="total"]'), ("data-used", "data-max", "data-level"))
        self.assertEqual(total, [{"data-used": "4", "data-max": "10", "data-level": "ok"}])
        self.b.screenshot("cluster")

    def test_queues_and_tasks_show_the_counts_and_a_page_submission(self):
        # Verifies a document submitted through the page's form becomes a task, the tasks view lists
        # every task with the API's status and chunk counts, and the queues view shows per provider
        # the done chunks of those tasks and nothing queued or running.
        self.open("#/tasks", "view-tasks")
        self.wait(lambda: self.d.find_element("css selector", by("submit-file")).send_keys(self.samples[-1]) or True,
                  "choose a file")
        self.type(by("submit-title"), "from-the-page")
        self.click(by("submit-button"))
        page_id = self.wait(lambda: self.attr(by("submit-result"), "data-task-id"), "the page's submission answers")
        task = self.node.get(f"/api/v1/tasks/{page_id}")
        self.assertEqual(task["title"], "from-the-page")
        self.wait_tasks_done(self.api_tasks + [page_id])
        api = {t["id"]: t for t in self.node.get("/api/v1/tasks?limit=100")["tasks"]}
        builtin = {i: t for i, t in api.items() if t["provider"] == "builtin"}
        self.assertGreaterEqual(len(builtin), len(self.samples))

        def listed():
            rows = self.rows(by("task-row"), ("data-task-id", "data-status"),
                             [("task-progress", "data-done"), ("task-progress", "data-total")])
            done, total = "task-progress.data-done", "task-progress.data-total"
            return {r["data-task-id"]: (r["data-status"], int(r[done]), int(r[total])) for r in rows}

        want = {i: (t["status"], t["chunks_done"], t["chunks_total"]) for i, t in api.items()}
        self.wait(lambda: listed() == want, "the tasks view equals GET /api/v1/tasks")
        self.assertEqual(self.attr(by("task-count"), "data-total"), str(len(want)), "task-count")
        self.b.screenshot("tasks")

        self.open("#/queues", "view-queues")
        done = sum(t["chunks_total"] for t in builtin.values())
        names = ("data-done", "data-queued", "data-running", "data-dead")
        want_q = [{"data-done": str(done), "data-queued": "0", "data-running": "0", "data-dead": "0"}]
        self.wait(
            lambda: self.rows(by("provider-queue", '[data-provider="builtin"]'), names) == want_q,
            f"builtin queue: {done} done, nothing queued, running or dead",
        )
        self.b.screenshot("queues")

    def test_node_version_caps_and_queue_figures_come_from_the_api(self):
        # Verifies the node row shows the version `kgflow --version` prints (from the node's record
        # in GET /api/v1/workers, not /metrics), each cap bar is measured against the node's own
        # caps (KG_MAX_TOTAL_PROCESSES, KG_MAX_PROCESSES_PER_PROVIDER), and the queues view shows
        # for every provider the queue figures GET /api/v1/providers gives.
        out = subprocess.run([ARGS.kgflow, "--version"], capture_output=True, text=True, check=True).stdout
        version = out.strip().split()[-1]
        self.open("#/cluster", "view-cluster")
        name = self.node.get("/api/v1/workers")["nodes"][0]["name"]
        row = by("node-row", f'[data-node="{name}"]')
        self.wait(lambda: self.attr(row, "data-version") == version, f"node row data-version {version}")
        self.assertEqual(self.attr(row + " " + by("node-version"), "text"), version)
        bars = self.rows(by("cap-bar", '[data-cap="per_provider"]'), ("data-node", "data-provider", "data-max"))
        self.assertEqual(
            sorted((b["data-provider"], b["data-max"]) for b in bars if b["data-node"] == name),
            [("builtin", "4"), ("slow", "4")],
        )

        self.open("#/queues", "view-queues")
        names = ("data-provider", "data-queued", "data-running", "data-delayed", "data-dead", "data-done")
        cols = ("queued", "running", "delayed", "dead", "done")

        def same():
            api = self.node.get("/api/v1/providers")["providers"]
            want = sorted([[p["name"], *[str(p["queue"][c]) for c in cols]] for p in api])
            page = sorted([[r[n] for n in names] for r in self.rows(by("provider-queue"), names)])
            return len(want) == 2 and page == want

        self.wait(same, "the queues view's figures equal GET /api/v1/providers' queue")

    def test_scaling_from_the_page_changes_the_processes(self):
        # Verifies scale-apply runs the wanted processes (API and /proc), a request above
        # KG_MAX_PROCESSES_PER_PROVIDER is clamped and says so, and scale-reset goes back to the
        # configured 2.
        self.open("#/cluster", "view-cluster")
        row = by("scale-row", '[data-provider="builtin"]')
        res, effective = row + " " + by("scale-result"), row + " " + by("scale-effective")

        def running(n):
            live = [p for p in self.api_processes().values() if p["provider"] == "builtin" and p["state"] != "stopping"]
            return len(self.node.worker_pids("builtin")) == n and len(live) == n

        self.type(row + " " + by("scale-input"), "3")
        self.click(row + " " + by("scale-apply"))
        self.wait(lambda: running(3), "3 builtin processes after scaling to 3")
        self.wait(lambda: self.attr(res, "data-target") == "3", "scale-result target 3")
        self.assertEqual(self.attr(res, "data-clamped"), "false")
        self.wait(lambda: self.attr(effective, "text") == "3", "effective 3")

        self.type(row + " " + by("scale-input"), "9")
        self.click(row + " " + by("scale-apply"))
        self.wait(lambda: self.attr(res, "data-target") == "4", "scale-result target 4 (clamped)")
        self.assertEqual(self.attr(res, "data-clamped"), "true")
        self.assertIn("KG_MAX_PROCESSES_PER_PROVIDER", self.attr(res, "text"))
        self.assertIn("9", self.attr(res, "text"), "the answer says what was asked")
        self.assertEqual(self.attr(by("toast"), "data-kind"), "warn", "a clamp is a notice, not an error")
        self.wait(lambda: running(4), "4 builtin processes after asking 9 (cap 4)")
        self.wait(lambda: sum(p["provider"] == "builtin" for p in self.page_processes().values()) == 4, "4 rows")
        self.b.screenshot("cluster-scaled")

        self.click(row + " " + by("scale-reset"))
        self.wait(lambda: running(2), "2 builtin processes after the reset")
        scaling = {s["provider"]: s for s in self.node.get("/api/v1/workers")["scaling"]}
        self.assertIsNone(scaling["builtin"]["override"])
        self.wait(lambda: self.attr(effective, "text") == "2", "effective 2 after the reset")

    def test_cancel_and_retry_a_running_task(self):
        # Verifies the task page shows a slow task running, cancel-button cancels it (API and page),
        # and retry-button queues it again.
        tid = self.node.submit("Mara Voss founded Helix Dynamics in Port Avalon.", "slow-task", "slow")
        harness.wait_for(lambda: self.node.get(f"/api/v1/tasks/{tid}")["status"] == "running", 15, "slow task running")
        self.open(f"#/tasks/{tid}", "view-task")
        self.assertEqual(self.attr(by("view-task"), "data-task-id"), tid)
        status = by("view-task") + " " + by("task-status")
        self.wait(lambda: self.attr(status, "data-status") == "running", "the page shows it running")
        self.assertIsNone(self.attr(by("cancel-button"), "disabled"))
        self.b.screenshot("task-running")
        self.click(by("cancel-button"))
        harness.wait_for(lambda: self.node.get(f"/api/v1/tasks/{tid}")["status"] == "cancelled", 10, "API: cancelled")
        self.wait(lambda: self.attr(status, "data-status") == "cancelled", "the page shows it cancelled")
        self.click(by("retry-button"))
        harness.wait_for(
            lambda: self.node.get(f"/api/v1/tasks/{tid}")["status"] in ("queued", "running"), 10, "API: queued again"
        )
        self.wait(lambda: self.attr(status, "data-status") in ("queued", "running"), "the page shows it queued again")
        self.node.request("POST", f"/api/v1/tasks/{tid}/cancel")  # frees the slow worker

    def test_task_page_lists_every_chunk_with_its_duration(self):
        # Verifies the page of a finished task of several chunks draws one chunk-row per chunk (as
        # many as the API's chunks_total, in idx order, with the API's ids and states), and that
        # every done row has a duration (data-duration-ms, a whole number of ms).
        parts = []
        for path in self.samples:
            with open(path) as f:
                parts.append(f.read())
        text = "\n\n".join(parts)
        tid = self.node.submit(text, "several-chunks")
        self.wait_tasks_done([tid])
        api = self.node.get(f"/api/v1/tasks/{tid}?chunks=1")
        total = api["chunks_total"]
        self.assertGreater(total, 1, "the document should make several chunks")
        self.open(f"#/tasks/{tid}", "view-task")
        self.wait(lambda: self.count(by("chunk-row")) == total, f"{total} chunk rows")
        names = ("data-chunk", "data-idx", "data-state", "data-attempts", "data-duration-ms")
        rows = self.rows(by("chunk-row"), names)
        self.assertEqual([r["data-idx"] for r in rows], [str(i) for i in range(total)])
        self.assertEqual([r["data-chunk"] for r in rows], [c["id"] for c in api["chunks"]])
        for r in rows:
            self.assertEqual(r["data-state"], "done", r)
            self.assertRegex(r["data-duration-ms"] or "", r"^\d+$", f"done row without a duration: {r}")
            self.assertGreaterEqual(int(r["data-attempts"]), 1, r)
        self.assertEqual(self.attr(by("chunks-truncated"), "hidden"), "", "no truncation note for a small task")
        self.b.screenshot("task-chunks")

    def test_task_list_filters_pages_and_counts_on_the_server(self):
        # Verifies the tasks view asks the node for its filters: a search (q) shows only the
        # matching tasks with the node's total in task-count, the provider filter only that
        # provider's, and with more matches than a page (101) task-more loads the rest.
        tag = "bulk" + str(random.randrange(10**6))
        ids = [self.node.submit(f"Item {i} of the list.", f"{tag}-{i:03d}") for i in range(101)]
        self.open("#/tasks", "view-tasks")
        self.type(by("task-search"), tag)
        self.wait(lambda: self.attr(by("task-count"), "data-total") == "101", "task-count: 101 match")
        self.wait(lambda: self.count(by("task-row")) == 100, "one page of 100 rows")
        self.assertEqual(self.attr(by("task-count"), "data-shown"), "100")
        self.assertIsNone(self.attr(by("task-more"), "hidden"), "task-more is shown")
        # A poll of the first page held in flight across the click must not drop the loaded rows
        # when it answers: hold each first-page answer 2.5 s, click while one is held.
        self.d.execute_script(
            "window.__kgHeld = 0; window.__kgAnswered = 0; window.__kgHold = true;"
            "if (!window.__kgFetch) { window.__kgFetch = window.fetch; window.fetch = (u, o) => {"
            "  const p = window.__kgFetch(u, o);"
            "  if (!window.__kgHold || !/[/]api[/]v1[/]tasks[?].*offset=0/.test(String(u))) return p;"
            "  window.__kgHeld += 1;"
            "  return p.then((r) => new Promise((ok) => setTimeout(() => { window.__kgAnswered += 1; ok(r); }, 2500)));"
            "}; }")
        self.addCleanup(self.d.execute_script, "window.__kgHold = false;")
        self.wait(lambda: self.d.execute_script("return window.__kgHeld > window.__kgAnswered;"), "a poll held")
        answered = self.d.execute_script("return window.__kgAnswered;")
        self.click(by("task-more"))
        self.wait(lambda: self.count(by("task-row")) == 101, "101 rows after task-more")
        self.wait(lambda: self.d.execute_script("return window.__kgAnswered;") > answered, "the held poll answers")
        from selenium.common.exceptions import TimeoutException  # lazily, as harness.py does

        self.assertRaises(TimeoutException, self.b.wait, lambda: self.count(by("task-row")) != 101, 1.5,
                          "the held poll's answer did not replace the rows task-more loaded")
        self.d.execute_script("window.__kgHold = false;")
        listed = {r["data-task-id"] for r in self.rows(by("task-row"), ("data-task-id",))}
        self.assertEqual(listed, set(ids))
        self.wait(lambda: self.attr(by("task-more"), "hidden") == "", "task-more hidden once all are loaded")

        self.type(by("task-search"), f"{tag}-042")
        self.wait(lambda: [r["data-task-id"] for r in self.rows(by("task-row"), ("data-task-id",))] == [ids[42]],
                  "the search narrows to one task")
        self.assertEqual(self.attr(by("task-count"), "data-total"), "1")

        # At least one slow task, so the provider filter has rows to show.
        mine = self.node.submit("Ilse Brandt joined Sable Robotics.", "a-slow-one", "slow")
        self.addCleanup(self.node.request, "POST", f"/api/v1/tasks/{mine}/cancel")
        slow = self.node.get("/api/v1/tasks?provider=slow&limit=1000")["total"]
        self.type(by("task-search"), "")
        # The page is not reloaded between tests: the filters go back to "all" after this one.
        self.addCleanup(self.d.execute_script,
                        "const s = document.querySelector(arguments[0]); s.value = '';"
                        "s.dispatchEvent(new Event('change'));", by("task-provider-filter"))
        self.d.execute_script(
            "const s = document.querySelector(arguments[0]); s.value = 'slow';"
            "s.dispatchEvent(new Event('change'));", by("task-provider-filter"))
        self.wait(lambda: self.attr(by("task-count"), "data-total") == str(slow), f"task-count: {slow} slow tasks")
        self.wait(lambda: self.count(by("task-row")) == min(slow, 100), f"{min(slow, 100)} rows of slow tasks")
        providers = {r["data-provider"] for r in self.rows(by("task-row"), ("data-provider",))}
        self.assertEqual(providers, {"slow"})
        self.b.screenshot("tasks-filtered")

    def test_sigkilled_worker_shows_its_restart_and_last_exit(self):
        # Verifies a worker killed with SIGKILL disappears from the page and its replacement shows
        # one more restart and a last exit naming SIGKILL, as GET /api/v1/workers does.
        self.open("#/cluster", "view-cluster")
        victim = sorted(self.node.worker_pids("builtin"))[0]
        before = self.api_processes()[victim]["restarts"]
        os.kill(victim, signal.SIGKILL)

        def replacement():
            for pid, p in self.api_processes().items():
                if p["provider"] == "builtin" and p["restarts"] == before + 1 and "SIGKILL" in p["last_exit"]:
                    return pid, p
            return None

        pid, p = harness.wait_for(replacement, 10, "the API shows the replacement")
        self.assertNotEqual(pid, victim)

        def shown():
            page = self.page_processes()
            return (
                victim not in page
                and pid in page
                and page[pid]["restarts"] == p["restarts"]
                and page[pid]["last_exit"] == p["last_exit"]
                and "SIGKILL" in page[pid]["last_exit_text"]
            )

        self.wait(shown, "the page shows the replacement's restart and last exit")
        self.b.screenshot("cluster-restart")

    def test_graph_explorer_draws_a_searched_neighbourhood(self):
        # Verifies a search lists the API's matches, opening one draws it with its neighbours
        # (one node per distinct neighbour, one edge per relation) and lists its relations, the
        # drawing is not blank, and export counts what is drawn.
        self.wait_tasks_done(self.api_tasks)
        query = "Helix"
        hits = [e["key"] for e in self.node.get(f"/api/v1/graph/entities?q={query}")["entities"]]
        self.assertTrue(hits, "the samples name Helix Dynamics")
        key = hits[0]
        entity = self.node.get("/api/v1/graph/entities/" + urllib.parse.quote(key, safe=""))
        neighbours = {n["entity"]["key"] for n in entity["neighbours"]}
        self.assertTrue(neighbours)

        self.open("#/graph", "view-graph")
        self.type(by("graph-search"), query + "\n")
        self.wait(lambda: sorted(r["data-key"] for r in self.rows(by("graph-result"), ["data-key"])) == sorted(hits),
                  "the search lists the API's matches")
        self.click(by("graph-result", f'[data-key="{key}"]') + " a")
        canvas = by("graph-canvas")
        self.wait(lambda: self.attr(canvas, "data-center") == key, "the canvas is centred on " + key)
        drawn = (str(1 + len(neighbours)), str(len(entity["neighbours"])))
        self.wait(lambda: (self.attr(canvas, "data-nodes"), self.attr(canvas, "data-edges")) == drawn,
                  f"{drawn[0]} nodes and {drawn[1]} edges drawn")
        self.assertEqual(self.attr(by("entity-detail"), "data-key"), key)
        rows = self.rows(by("relation-row"), ["data-neighbour"])
        self.assertEqual(len(rows), len(entity["neighbours"]))
        self.assertEqual({r["data-neighbour"] for r in rows}, neighbours)
        colours = harness.png_colour_count(self.d.find_element("css selector", canvas).screenshot_as_png)
        self.assertGreater(colours, 8, "the graph canvas is blank")
        self.b.screenshot("graph")
        # Expand a neighbour with neighbours not drawn yet (if any): the detail and the centre move
        # to it and exactly its unseen neighbours are added.
        drawn = {key} | neighbours
        unseen = {nb: self.unseen_neighbours(nb, drawn) for nb in sorted(neighbours)}
        target = max(sorted(unseen), key=lambda nb: len(unseen[nb]))
        self.assertTrue(unseen[target], "a neighbour of Helix has neighbours of its own in the samples")
        button = by("relation-row", f'[data-neighbour="{target}"]') + " " + by("relation-expand")
        # Centred: a row low on the page can sit under the toast of an earlier action.
        self.d.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'center'});", button)
        self.expands_to(target, len(drawn) + len(unseen[target]), lambda: self.click(button))
        self.click(by("graph-export"))
        self.wait(
            lambda: self.attr(by("graph-export"), "data-exported")
            == str(int(self.attr(canvas, "data-nodes")) + int(self.attr(canvas, "data-edges"))),
            "export counts the drawn elements",
        )

    def test_graph_relation_shows_the_sentence_naming_both_ends(self):
        # Verifies the provenance of the graph explorer on a sample entity: each relation row shows
        # the API's sentence, which names both ends, with its chunk and document; the mention
        # chunks' text is listed; the wheel zooms and a drag pans the drawing; Enter on a
        # relation-expand button (keyboard only) expands that neighbour; and the exported view
        # carries the drawn relations' evidence text.
        from selenium.webdriver.common.keys import Keys  # lazily, as harness.py does

        self.wait_tasks_done(self.api_tasks)
        key = "organization:helix dynamics"
        entity = self.node.get("/api/v1/graph/entities/" + urllib.parse.quote(key, safe=""))
        name = entity["name"]
        names = {n["entity"]["key"]: n["entity"]["name"] for n in entity["neighbours"]}
        with_sentence = {n["entity"]["key"]: n for n in entity["neighbours"] if n["sentence"]}
        self.assertTrue(with_sentence, "a sample sentence names Helix Dynamics and a neighbour")

        self.open("#/graph/" + urllib.parse.quote(key, safe=""), "view-graph")
        self.wait(lambda: self.attr(by("entity-detail"), "data-key") == key, "the detail shows " + key)
        inner = [("relation-sentence", "text"), ("relation-sentence", "data-source"),
                 ("relation-sentence", "data-chunk"), ("relation-sentence", "data-doc")]
        self.wait(lambda: len(self.rows(by("relation-row"), ["data-neighbour"])) == len(entity["neighbours"]),
                  "one row per relation")
        rows = self.rows(by("relation-row"), ["data-neighbour"], inner)
        shown = [r for r in rows if r["relation-sentence.data-source"] == "sentence"]
        self.assertEqual({r["data-neighbour"] for r in shown}, set(with_sentence))
        for r in shown:
            text = r["relation-sentence.text"].lower()
            self.assertIn(name.lower(), text, r)
            self.assertIn(names[r["data-neighbour"]].lower(), text, r)
            n = with_sentence[r["data-neighbour"]]
            self.assertEqual(r["relation-sentence.data-chunk"], n["sentence_chunk"])
            self.assertEqual(r["relation-sentence.data-doc"], entity["evidence"][n["sentence_chunk"]]["doc_id"])

        mentions = [c for c in entity["chunks"] if c in entity["evidence"]]
        self.assertTrue(mentions)
        self.click(".mention-chunks summary")
        got = self.rows(by("mention-chunk"), ["data-chunk"], [])
        self.assertEqual([r["data-chunk"] for r in got], mentions)
        first = self.attr(by("mention-chunk", f'[data-chunk="{mentions[0]}"]'), "text")
        self.assertIn(entity["evidence"][mentions[0]]["text"][:40], first)
        self.b.screenshot("graph-provenance")

        # Zoom (wheel) and pan (dragging the background from a corner) redraw the canvas.
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

        canvas = by("graph-canvas")
        el = self.d.find_element("css selector", canvas)
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
        still = el.screenshot_as_png
        # A wheel the drawing takes for zooming is not the page's to scroll (default prevented).
        self.d.execute_script("window.addEventListener('wheel', (e) => { window.kgWheelTaken = e.defaultPrevented; });")

        def zoom():
            # Cytoscape ignores the wheel for a moment after the page scrolled: wheel until it zooms.
            ActionChains(self.d).scroll_from_origin(ScrollOrigin.from_element(el), 0, -120).perform()
            return self.d.execute_script("return window.kgWheelTaken === true;") and el.screenshot_as_png != still

        self.wait(zoom, "the wheel zooms the drawing")
        zoomed = el.screenshot_as_png
        corner = (-el.size["width"] // 2 + 6, -el.size["height"] // 2 + 6)
        drag = ActionChains(self.d).move_to_element_with_offset(el, *corner).click_and_hold()
        for _ in range(6):  # several moves: the first only starts the drag
            drag.move_by_offset(20, 15)
        drag.release().perform()
        self.wait(lambda: el.screenshot_as_png != zoomed, "dragging the background pans the drawing")

        target = rows[-1]["data-neighbour"]
        drawn = {key} | set(names)

        def enter():
            self.d.execute_script(
                "document.querySelector(arguments[0]).focus();",
                by("relation-row", f'[data-neighbour="{target}"]') + " " + by("relation-expand"),
            )
            self.d.switch_to.active_element.send_keys(Keys.ENTER)

        self.expands_to(target, len(drawn) + len(self.unseen_neighbours(target, drawn)), enter)

        # The export: catch the Blob the page hands to URL.createObjectURL.
        self.d.execute_script(
            "if (!window.__kgExport) { const make = URL.createObjectURL;"
            " URL.createObjectURL = (b) => { window.__kgExport = b; return make.call(URL, b); }; }"
        )
        self.click(by("graph-export"))
        exported = json.loads(self.d.execute_async_script(
            "const done = arguments[arguments.length - 1]; window.__kgExport.text().then(done);"))
        edge = next(e for e in exported["edges"]
                    if key in (e["source"], e["target"]) and with_sentence.get(e["target"] if e["source"] == key else e["source"]))
        other = edge["target"] if edge["source"] == key else edge["source"]
        self.assertEqual(edge["sentence"], with_sentence[other]["sentence"])
        self.assertTrue(edge["evidence_text"], edge)
        for cid, c in edge["evidence_text"].items():
            self.assertIn(cid, edge["evidence"])
            self.assertTrue(c["text"])

    def test_language_switch_changes_labels(self):
        # Verifies the language switch turns the navigation into Chinese (and <html lang>), and back.
        self.open("#/cluster", "view-cluster")
        sw, nav = by("lang-switch"), by("nav-cluster")
        if self.attr(sw, "data-lang") != "en":
            self.click(sw)
            self.wait(lambda: self.attr(sw, "data-lang") == "en", "English")
        english = self.attr(nav, "text")
        self.assertTrue(english)
        self.click(sw)
        self.wait(lambda: self.attr(sw, "data-lang") == "zh", "data-lang zh")
        self.wait(lambda: re.search(r"[\u4e00-\u9fff]", self.attr(nav, "text")), "a Chinese label")
        self.assertTrue(self.d.execute_script("return document.documentElement.lang").startswith("zh"))
        self.ready("view-cluster")
        self.b.screenshot("cluster-zh")
        self.click(sw)
        self.wait(lambda: self.attr(nav, "text") == english, "English labels again")

    def test_an_expansion_survives_the_next_polls(self):
        # Verifies expanding a neighbour (its row's button) adds that neighbour's own neighbours to
        # the drawing and centres it, and that the drawing is still so after two more polls: the
        # poll reads the key from the address, which expanding rewrites without a hashchange (it
        # once reopened the first entity about 3 s later, undoing the expansion).
        self.wait_tasks_done(self.api_tasks)
        key = "organization:helix dynamics"
        quote = lambda k: urllib.parse.quote(k, safe="")
        entity = self.node.get("/api/v1/graph/entities/" + quote(key))
        drawn = {key} | {n["entity"]["key"] for n in entity["neighbours"]}
        grows = None
        for n in entity["neighbours"]:
            theirs = {m["entity"]["key"] for m in self.node.get("/api/v1/graph/entities/" + quote(n["entity"]["key"]))["neighbours"]}
            if theirs - drawn:
                grows, expected = n["entity"]["key"], len(drawn | theirs)
                break
        self.assertIsNotNone(grows, "a neighbour of Helix Dynamics has neighbours of its own not drawn yet")

        self.open("#/graph/" + quote(key), "view-graph")
        canvas = by("graph-canvas")
        self.wait(lambda: self.attr(canvas, "data-nodes") == str(len(drawn)), f"{len(drawn)} nodes drawn")
        self.click(by("relation-row", f'[data-neighbour="{grows}"]') + " " + by("relation-expand"))
        self.wait(lambda: self.attr(canvas, "data-center") == grows and self.attr(canvas, "data-nodes") == str(expected),
                  f"expanding {grows} centres it and draws {expected} nodes")
        polls = lambda: self.d.execute_script(
            "return performance.getEntriesByType('resource').filter(e => e.name.endsWith('/metrics')).length")
        self.d.execute_script("performance.clearResourceTimings()")  # the buffer holds 250 entries
        self.wait(lambda: polls() >= 2, "two more polls", timeout=15)
        self.assertEqual(self.attr(canvas, "data-center"), grows, "a poll reopened another entity")
        self.assertEqual(self.attr(canvas, "data-nodes"), str(expected), "a poll undid the expansion")
        self.assertEqual(self.attr(by("entity-detail"), "data-key"), grows)


class UnreachableNodeTest(unittest.TestCase):
    """Its own node, stopped under the page and started again on the same port and data."""

    def test_a_node_that_goes_away_shows_unreachable_then_live_again(self):
        # Verifies the page says the node is unreachable (banner shown, live-status "unreachable")
        # once it stops, instead of freezing, and goes back to live when it answers again; the
        # only console errors meanwhile are the failed requests to the stopped node.
        d = tempfile.mkdtemp(prefix="kg-console-down-")
        node = harness.Node(ARGS.kgflow, d, NODE_ENV)
        dev = b = None
        try:
            base = node.url
            if ARGS.dev_server:
                dev = DevServer(ARGS.dev_server, ARGS.web, node.url, d)
                base = dev.url
            b = harness.Browser(os.path.join(ARGS.out, "unreachable"))
            b.driver.get(base + "/#/cluster")
            js = "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;"

            def attr(css, name):
                return b.driver.execute_script(js, css, name)

            b.wait(lambda: attr(by("view-cluster"), "data-ready") == "true", WAIT, "the cluster view is ready")
            b.wait(lambda: attr(by("live-status"), "data-state") == "live", WAIT, "live")
            self.assertIsNotNone(attr(by("unreachable-banner"), "hidden"), "no banner while the node answers")
            self.assertEqual(b.severe(), [])
            self.assertEqual(node.stop(), [])
            b.wait(lambda: attr(by("live-status"), "data-state") == "unreachable", WAIT, "live-status unreachable")
            b.wait(lambda: attr(by("unreachable-banner"), "hidden") is None, WAIT, "the banner shows")
            self.assertTrue(attr(by("unreachable-banner"), "data-since"))
            b.screenshot("unreachable")
            node = harness.Node(ARGS.kgflow, d, NODE_ENV, port=node.port)
            b.wait(lambda: attr(by("live-status"), "data-state") == "live", WAIT, "live again")
            b.wait(lambda: attr(by("unreachable-banner"), "hidden") is not None, WAIT, "the banner hides again")
            others = [e for e in b.severe() if e.get("source") != "network"]
            self.assertEqual(others, [], "console errors other than the failed requests")
        finally:
            if b:
                b.quit()
            if dev:
                dev.stop()
            node.stop()
            shutil.rmtree(d, ignore_errors=True)


class OwnNodeTest(unittest.TestCase):
    """Each test its own node (env of its own), the page (through --dev-server if given) and a browser."""

    def start(self, prefix, env, args=("start",), before_load=None):
        d = tempfile.mkdtemp(prefix=prefix)
        self.addCleanup(shutil.rmtree, d, True)
        node = harness.Node(ARGS.kgflow, d, env, args=args)
        self.addCleanup(node.stop)
        base = node.url
        if ARGS.dev_server:
            dev = DevServer(ARGS.dev_server, ARGS.web, node.url, d)
            self.addCleanup(dev.stop)
            base = dev.url
        b = harness.Browser(os.path.join(ARGS.out, prefix.strip("-")))
        self.addCleanup(b.quit)
        if before_load:
            b.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": before_load})
        self.node, self.b, self.d, self.base = node, b, b.driver, base
        return node

    def attr(self, css, name):
        return page_attr(self.d, css, name)

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def wait(self, cond, what, timeout=WAIT):
        return self.b.wait(cond, timeout, what)

    def no_console_errors_but(self, allowed):
        """No SEVERE console entry other than failed requests whose message names one of `allowed`."""
        others = [e for e in self.b.severe()
                  if not (e.get("source") == "network" and any(a in e["message"] for a in allowed))]
        self.assertEqual(others, [], "console errors")


# Counts the token dialog's openings from the first script of every page load.
COUNT_DIALOGS = (
    "performance.setResourceTimingBufferSize(100000);"  # counted below: the default 250 would fill
    "window.__kgAsked = 0; const show = HTMLDialogElement.prototype.showModal;"
    "HTMLDialogElement.prototype.showModal = function () { window.__kgAsked += 1; return show.call(this); };"
)
API_REQUESTS = "return performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/')).length;"


class TokenTest(OwnNodeTest):
    def test_token_is_asked_once_per_refusal_a_cancel_stops_asking_and_mutations_carry_it(self):
        # Verifies against a node with KG_API_TOKEN: the page asks for the token; a cancel neither
        # reopens the dialog nor polls /api/ for 7 s (live-status "token"); the header's
        # token-button asks again; a wrong token is dropped and asked for once more; the right one
        # shows the cluster and is kept in sessionStorage; a scale from the page carries it (the
        # node applies it); token-forget drops it and asks nothing.
        token = "s3cret-%d" % random.randrange(10**9)
        self.start("kg-console-token-", {**NODE_ENV, "KG_API_TOKEN": token}, before_load=COUNT_DIALOGS)
        asked = lambda: self.js("return window.__kgAsked;")  # noqa: E731
        is_open = lambda: self.js("return document.querySelector(arguments[0]).open;", by("token-dialog"))  # noqa: E731
        self.d.get(self.base + "/#/cluster")
        self.wait(lambda: is_open() and asked() == 1, "the page asks for the token")
        self.d.find_element("css selector", by("token-dialog") + ' button[value="cancel"]').click()
        self.wait(lambda: self.attr(by("live-status"), "data-state") == "token", "live-status token after a cancel")
        requests = self.js(API_REQUESTS)
        from selenium.common.exceptions import TimeoutException  # lazily, as harness.py does

        self.assertRaises(TimeoutException, self.b.wait, lambda: is_open() or asked() != 1, 7, "no new prompt")
        self.assertEqual(self.js(API_REQUESTS), requests, "/api/ polled after the cancel")
        self.assertIsNone(self.attr(by("token-button"), "hidden"), "token-button shown")

        self.d.find_element("css selector", by("token-button")).click()
        self.wait(lambda: is_open() and asked() == 2, "token-button opens the dialog")
        self.d.find_element("css selector", by("token-input")).send_keys("wrong-" + token)
        self.d.find_element("css selector", by("token-submit")).click()
        self.wait(lambda: is_open() and asked() == 3, "a refused token is asked for again")
        self.assertIsNone(self.js("return sessionStorage.getItem('kgflow-token');"), "the refused token is dropped")
        self.d.find_element("css selector", by("token-input")).send_keys(token)
        self.d.find_element("css selector", by("token-submit")).click()
        self.wait(lambda: self.attr(by("view-cluster"), "data-ready") == "true"
                  and self.attr(by("node-row"), "data-state") == "up", "the cluster shows with the token")
        self.assertEqual(self.js("return sessionStorage.getItem('kgflow-token');"), token)
        self.assertEqual(self.attr(by("token-button"), "data-stored"), "true")
        self.wait(lambda: self.attr(by("live-status"), "data-state") == "live", "live")

        row = by("scale-row", '[data-provider="builtin"]')
        self.wait(lambda: self.js("return document.querySelector(arguments[0]) !== null;", row), "the scale row")
        el = self.d.find_element("css selector", row + " " + by("scale-input"))
        el.clear()
        el.send_keys("1")
        self.d.find_element("css selector", row + " " + by("scale-apply")).click()
        self.wait(lambda: self.attr(row + " " + by("scale-result"), "data-target") == "1", "the scale is applied")
        scaling = {s["provider"]: s for s in self.node.get("/api/v1/workers")["scaling"]}
        self.assertEqual(scaling["builtin"]["override"], 1)
        self.assertEqual(asked(), 3, "asked again although the token works")
        self.b.screenshot("token-cluster")

        self.d.find_element("css selector", by("token-button")).click()
        self.wait(lambda: is_open() and asked() == 4, "token-button opens the dialog")
        self.d.find_element("css selector", by("token-forget")).click()
        self.wait(lambda: self.attr(by("live-status"), "data-state") == "token", "live-status token after forget")
        self.assertIsNone(self.js("return sessionStorage.getItem('kgflow-token');"), "forget drops the token")
        self.assertFalse(is_open())
        self.no_console_errors_but(["401"])


class WebNodeTest(OwnNodeTest):
    def test_a_web_node_shows_no_per_node_figure(self):
        # Verifies the scaling rows of a web node (NODE_ROLE=web: no supervisor, so no per_node in
        # GET /api/v1/workers' scaling) show "—" and leave the wanted box empty, never "undefined".
        node = self.start("kg-console-web-", {**NODE_ENV, "NODE_ROLE": "web"})
        scaling = node.get("/api/v1/workers")["scaling"]
        self.assertTrue(scaling)
        self.assertNotIn("per_node", scaling[0])
        self.d.get(self.base + "/#/cluster")
        self.wait(lambda: self.attr(by("view-cluster"), "data-ready") == "true", "the cluster view is ready")
        rows = self.js(
            "return [...document.querySelectorAll(arguments[0])].map((r) => [r.dataset.provider,"
            " r.querySelector('[data-testid=scale-effective]').textContent.trim(),"
            " r.querySelector('[data-testid=scale-effective]').dataset.perNode,"
            " r.querySelector('[data-testid=scale-input]').value]);", by("scale-row"))
        self.assertEqual(sorted(rows), sorted([s["provider"], "—", "", ""] for s in scaling))
        self.assertNotIn("undefined", self.attr(by("view-cluster"), "text"))
        self.b.screenshot("web-node")
        self.no_console_errors_but([])

    def test_a_node_that_stops_beating_shows_down(self):
        # Verifies a second node on the same data (beating every second) is listed up, and once
        # SIGKILLed shows DOWN (data-state "down") when its heartbeat goes stale, as the API says.
        node = self.start("kg-console-two-", {**NODE_ENV, "NODE_ROLE": "web"})
        d = tempfile.mkdtemp(prefix="kg-console-other-")
        self.addCleanup(shutil.rmtree, d, True)
        env = {**NODE_ENV, "NODE_ROLE": "web", "KG_WORKER_NODE_NAME": "other-node", "KG_HEARTBEAT_SECONDS": "1",
               "KG_DATA_DIR": os.path.join(node.workdir, "data")}
        other = harness.Node(ARGS.kgflow, d, env)
        self.addCleanup(other.stop)
        row = by("node-row", '[data-node="other-node"]')
        self.d.get(self.base + "/#/cluster")
        self.wait(lambda: self.attr(row, "data-state") == "up", "the other node is listed up")
        os.kill(other.proc.pid, signal.SIGKILL)
        other.proc.wait()
        self.wait(lambda: self.attr(row, "data-state") == "down", "the other node shows DOWN once stale")
        self.assertIn("other-node", [n["name"] for n in node.get("/api/v1/workers")["down"]])
        self.b.screenshot("node-down")
        self.no_console_errors_but([])


# A provider whose worker crashes on a marker: with KG_POISON_CRASHES=1 its chunk is dead-lettered.
FRAGILE = '[providers.fragile]\nfault = "crash_on_marker"\ncrash_marker = "POISON-PILL"\n'


class FiguresNodeTest(OwnNodeTest):
    """Figures the shared node cannot show without disturbing the other tests."""

    def test_a_dead_letter_shows_in_the_queues_and_on_its_task_page(self):
        # Verifies a chunk dead-lettered as poison (a worker crashing on it) is counted in the
        # queues view's dead figure (every figure equal to GET /api/v1/providers' queue, dead > 0),
        # and listed on its task's page as a dead-letter row with its chunk and a reason naming
        # poison, as GET /api/v1/tasks/ID gives it.
        d = tempfile.mkdtemp(prefix="kg-console-cfg-")
        self.addCleanup(shutil.rmtree, d, True)
        cfg = os.path.join(d, "kg.toml")
        with open(cfg, "w") as f:
            f.write(FRAGILE)
        env = {**NODE_ENV, "KG_WORKERS_PER_PROVIDER": "1", "KG_CONFIG": cfg, "KG_POISON_CRASHES": "1"}
        node = self.start("kg-console-dead-", env)
        tid = node.submit("This sentence carries the POISON-PILL marker.", "poison", "fragile")
        harness.wait_for(lambda: node.get(f"/api/v1/tasks/{tid}")["status"] == "failed", 30, "the poison task fails")
        task = node.get(f"/api/v1/tasks/{tid}")
        self.assertEqual(len(task["dead_letters"]), 1, task)
        letter = task["dead_letters"][0]
        self.assertIn("poison", letter["error"])

        self.d.get(self.base + "/#/queues")
        self.wait(lambda: self.attr(by("view-queues"), "data-ready") == "true", "the queues view is ready")
        names = ("data-provider", "data-queued", "data-running", "data-delayed", "data-dead", "data-done")
        cols = ("queued", "running", "delayed", "dead", "done")

        def same():
            api = node.get("/api/v1/providers")["providers"]
            want = sorted([[p["name"], *[str(p["queue"][c]) for c in cols]] for p in api])
            page = sorted(self.js("return [...document.querySelectorAll(arguments[0])].map("
                                  "(r) => arguments[1].map((n) => r.getAttribute(n)));", by("provider-queue"), names))
            return page == want and ["fragile", "1"] in [[r[0], r[4]] for r in page] and page

        self.wait(same, "the queues view equals the API's queue with fragile's dead chunk")

        self.d.get(self.base + "/#/tasks/" + tid)
        self.wait(lambda: self.attr(by("view-task"), "data-ready") == "true"
                  and self.attr(by("view-task"), "data-task-id") == tid, "the task page is ready")
        rows = self.js("return [...document.querySelectorAll(arguments[0])].map((r) => [r.dataset.chunk,"
                       " r.querySelector('.reason').textContent]);", by("dead-letter"))
        self.assertEqual(rows, [[letter["chunk"], letter["error"]]])
        self.b.screenshot("task-dead-letter")
        self.no_console_errors_but([])

    def test_cap_bar_turns_amber_at_80_and_full_at_100_percent(self):
        # Verifies a provider's cap bar is "ok" under 80 % of KG_MAX_PROCESSES_PER_PROVIDER, "amber"
        # at 4 of 5 processes and "full" at 5 of 5 (scaled through the API on a node of its own).
        env = {**NODE_ENV, "KG_WORKERS_PER_PROVIDER": "1", "KG_MAX_PROCESSES_PER_PROVIDER": "5"}
        node = self.start("kg-console-caps-", env)
        bar = by("cap-bar", '[data-cap="per_provider"][data-provider="builtin"]')
        self.d.get(self.base + "/#/cluster")
        self.wait(lambda: (self.attr(bar, "data-used"), self.attr(bar, "data-level")) == ("1", "ok"), "1 of 5: ok")
        for n, level in ((4, "amber"), (5, "full")):
            status, body = node.request("PUT", "/api/v1/providers/builtin/processes", {"per_node": n})
            self.assertEqual(status, 200, body)
            want = (str(n), "5", level)
            self.wait(lambda: (self.attr(bar, "data-used"), self.attr(bar, "data-max"), self.attr(bar, "data-level")) == want,
                      f"{n} of 5: {level}", timeout=30)
            self.b.screenshot("cap-" + level)
        self.no_console_errors_but([])

    def test_polling_pauses_while_hidden_and_the_charts_grow(self):
        # Verifies the queues view's charts gain a point per poll, and that while the tab is hidden
        # (document.hidden overridden, a visibilitychange dispatched) the page asks the node nothing
        # for over two poll periods (live-status "paused"), and polls again once visible.
        self.start("kg-console-hidden-", NODE_ENV, before_load="performance.setResourceTimingBufferSize(100000);")
        self.d.get(self.base + "/#/queues")
        self.wait(lambda: self.attr(by("view-queues"), "data-ready") == "true", "the queues view is ready")
        points = lambda: int(self.attr(by("chart-chunks"), "data-points") or 0)  # noqa: E731
        first = points()
        self.wait(lambda: points() >= first + 2, "the chart gains points as the page polls", timeout=12)
        self.assertEqual(self.attr(by("chart-errors"), "data-points"), str(points()))

        requests = "return performance.getEntriesByType('resource').filter((e) => /[/](api|metrics)/.test(e.name)).length;"
        self.js("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
                "Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});"
                "document.dispatchEvent(new Event('visibilitychange'));")
        self.wait(lambda: self.attr(by("live-status"), "data-state") == "paused", "live-status paused")
        # A poll under way when it hid may still answer: count from a moment after.
        self.wait(lambda: self.js("return performance.getEntriesByType('resource').every((e) => e.responseEnd > 0);"),
                  "no request in flight")
        before, held = self.js(requests), points()
        from selenium.common.exceptions import TimeoutException  # lazily, as harness.py does

        self.assertRaises(TimeoutException, self.b.wait, lambda: self.js(requests) != before, 7, "no request while hidden")
        self.assertEqual(points(), held)
        self.js("delete document.hidden; delete document.visibilityState;"
                "document.dispatchEvent(new Event('visibilitychange'));")
        self.wait(lambda: self.attr(by("live-status"), "data-state") == "live" and self.js(requests) > before,
                  "polling again once visible")
        self.no_console_errors_but([])


class DevServer:
    """web/dev_server.py serving a built console in front of the node (page changes without a rebuild)."""

    def __init__(self, script, web_dir, node_url, workdir):
        port = harness.free_port()
        self.log = open(os.path.join(workdir, "dev_server.out"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, script, web_dir, node_url, str(port)], stdout=self.log, stderr=subprocess.STDOUT
        )

        def listening():
            self.log.seek(0)
            m = re.search(r"DEV_SERVER_LISTENING (\S+)", self.log.read())
            return m and m.group(1)

        try:
            self.url = harness.wait_for(listening, 10, "the dev server listens")
        except TimeoutError:
            self.stop()
            raise

    def stop(self):
        harness.stop_tree(self.proc, 5)
        self.log.close()


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kgflow", default=os.environ.get("KGFLOW"), help="the kgflow binary (or $KGFLOW)")
    p.add_argument("--out", default=None, help="screenshots and logs (default: a temp dir)")
    p.add_argument("--samples", default=os.path.join(REPO, "samples"))
    p.add_argument("--dev-server", default=None, help="web/dev_server.py, to serve --web in front of the node")
    p.add_argument("--web", default=None, help="the built console (web/build.sh OUT_DIR)")
    p.add_argument("--keep", action="store_true", help="keep the node's data dir")
    ARGS, rest = p.parse_known_args()
    if not ARGS.kgflow or not os.access(ARGS.kgflow, os.X_OK):
        p.error("--kgflow: an executable kgflow binary is needed")
    if bool(ARGS.dev_server) != bool(ARGS.web):
        p.error("--dev-server and --web go together")
    ARGS.out = os.path.abspath(ARGS.out or tempfile.mkdtemp(prefix="kg-console-shots-"))
    os.makedirs(ARGS.out, exist_ok=True)
    print(f"console tests: screenshots and logs in {ARGS.out}", flush=True)

    def too_long(*_):
        global EXPIRED
        EXPIRED = True
        raise TimeoutError(f"the console tests ran over {SUITE_DEADLINE_S} s")

    signal.signal(signal.SIGALRM, too_long)  # raised inside the running test: its cleanup still runs
    signal.alarm(SUITE_DEADLINE_S)
    prog = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2)
    signal.alarm(0)
    sys.exit(0 if prog.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
