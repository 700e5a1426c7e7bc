"""Harness of the web console's browser tests: a kgflow node and a headless Chromium, both owned.

A `Node` is a `kgflow start` on a free loopback port with its data in a directory of the test; a
`Browser` is Debian's Chromium driven through Debian's /usr/bin/chromedriver by Debian's Selenium
(4.8; nothing is downloaded). Both are stopped by pid, their process trees included (the node's
worker processes, Chromium's renderers), on success and failure alike: `stop()` kills whatever is
still alive after a grace period and says so, so nothing outlives a test.

The browser keeps every console message (goog:loggingPrefs browser ALL); `severe()` returns the
SEVERE ones (uncaught errors, console.error, failed loads), which a test treats as a failure.
`screenshot()` saves a PNG per view and refuses a blank one: the PNG is decoded with zlib from the
standard library (no PIL) and its distinct colours counted.

Use Debian's python3 (/usr/bin/python3): python3-selenium lives in its dist-packages.
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zlib

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class HarnessError(Exception):
    """The harness could not start or stop what a test needs (not a failure of the page)."""


def wait_for(cond, timeout, what, interval=0.05):
    """Polls `cond` until it returns a truthy value (returned) or `timeout` seconds pass (raises)."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # a condition that raises is not met yet; keep the reason
            last_error = e
        if time.monotonic() >= deadline:
            why = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{what}: not within {timeout} s{why}")
        time.sleep(interval)


def free_port():
    """A TCP port free on 127.0.0.1 now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- processes --------------------------------------------------------------------------------


def proc_state(pid):
    """The state letter of /proc/<pid>/stat, or "" when the process does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            line = f.read()
    except OSError:
        return ""
    close = line.rfind(")")
    return line[close + 2 : close + 3] if close >= 0 else ""


def alive(pid):
    """True when `pid` exists and is neither a zombie nor dead."""
    return proc_state(pid) not in ("", "Z", "X")


def children(pid):
    """Direct children of `pid` (from /proc/<pid>/task/*/children)."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def descendants(pid):
    """Every process below `pid`, depth first."""
    out = []
    for c in children(pid):
        out.append(c)
        out.extend(descendants(c))
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [p.decode(errors="replace") for p in f.read().split(b"\0") if p]
    except OSError:
        return []


def stop_tree(popen, grace, known=()):
    """Stops `popen` (SIGTERM, then SIGKILL after `grace` seconds) and every process of its tree
    (collected before and after the signal, plus `known` pids) that is still alive afterwards, by
    pid. Returns the pids that had to be SIGKILLed; nothing of the tree is alive on return."""
    tree = set(known) | set(descendants(popen.pid))
    killed = []
    if popen.poll() is None:
        tree |= set(descendants(popen.pid))
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            tree |= set(descendants(popen.pid))
            popen.kill()
            killed.append(popen.pid)
            popen.wait()
    # Orphans of the tree (reparented when their parent ended) get the rest of the grace period.
    try:
        wait_for(lambda: not any(alive(p) for p in tree), grace, "the process tree ends")
    except TimeoutError:
        for p in sorted(tree):
            if alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                    killed.append(p)
                except ProcessLookupError:
                    pass
        wait_for(lambda: not any(alive(p) for p in tree), 5, "the SIGKILLed processes end")
    return killed


# ---- the node ---------------------------------------------------------------------------------


class Node:
    """A `kgflow start` (all roles) on a free loopback port, data in `workdir`/data, its stdout and
    stderr in `workdir`/node.out and node.err. Ready on return: it printed KGFLOW_LISTENING and
    /readyz answers 200 (else HarnessError with the end of its stderr, and it is stopped)."""

    def __init__(self, binary, workdir, env=None, args=("start",), ready_timeout=20, port=None):
        self.workdir = workdir
        self.port = port or free_port()  # `port`: a restart where the page expects the node
        os.makedirs(workdir, exist_ok=True)
        e = dict(os.environ)
        e.update(
            {
                "KG_DATA_DIR": os.path.join(workdir, "data"),
                "KG_HTTP_ADDR": f"127.0.0.1:{self.port}",
                "KG_HEALTH_ADDR": f"127.0.0.1:{self.port}",
            }
        )
        e.update(env or {})
        self.token = (env or {}).get("KG_API_TOKEN")  # sent by request() as the bearer token
        self.out_path = os.path.join(workdir, "node.out")
        self.err_path = os.path.join(workdir, "node.err")
        # Appended: a node restarted in the same directory keeps the earlier run's output.
        self._out_start = os.path.getsize(self.out_path) if os.path.exists(self.out_path) else 0
        with open(self.out_path, "ab") as out, open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen([binary, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=e)
        self._seen = set()
        try:
            self.url = wait_for(self._listening, ready_timeout, "the node prints KGFLOW_LISTENING")
            wait_for(lambda: self.request("GET", "/readyz")[0] == 200, ready_timeout, "the node's /readyz answers 200")
        except TimeoutError as e:
            self.stop()
            raise HarnessError(f"{e}\n--- node stderr (end) ---\n{self.stderr()[-3000:]}") from None

    def _listening(self):
        if self.proc.poll() is not None:
            raise HarnessError(f"the node exited with {self.proc.returncode}:\n{self.stderr()[-3000:]}")
        for line in self.stdout()[self._out_start :].splitlines():
            if line.startswith("KGFLOW_LISTENING "):
                return line.split(" ", 1)[1].strip()
        return None

    def stdout(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def request(self, method, path, body=None, timeout=10):
        """(status, parsed JSON or raw text) of one request; a JSON body for a dict/list `body`.
        (0, error) when the node does not answer."""
        data, headers = None, {}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as e:
            return 0, str(e)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def get(self, path):
        """Parsed JSON of a GET answering 200; HarnessError otherwise."""
        status, body = self.request("GET", path)
        if status != 200:
            raise HarnessError(f"GET {path}: {status} {body}")
        return body

    def submit(self, text, title, provider=None):
        """Submits `text`; the task id (HarnessError unless 202)."""
        body = {"text": text, "title": title}
        if provider:
            body["provider"] = provider
        status, answer = self.request("POST", "/api/v1/tasks", body)
        if status != 202:
            raise HarnessError(f"submit {title}: {status} {answer}")
        return answer["id"]

    def worker_pids(self, provider=None):
        """Live worker processes of this node ({pid: provider}), from their command lines."""
        out = {}
        for c in children(self.proc.pid):
            parts = cmdline(c)
            if not alive(c) or len(parts) < 2 or parts[1] != "__worker":
                continue
            p = parts[parts.index("--provider") + 1] if "--provider" in parts[:-1] else ""
            if provider is None or p == provider:
                out[c] = p
        return out

    def stop(self, grace=15):
        """Stops the node and its workers by pid; the pids that needed SIGKILL."""
        return stop_tree(self.proc, grace)


# ---- the browser ------------------------------------------------------------------------------


class Browser:
    """Headless Chromium (new headless mode, a fixed window) through /usr/bin/chromedriver.
    `out_dir` receives the screenshots, chromedriver.log, and the browser profile (removed with
    the test's directory by the caller)."""

    def __init__(self, out_dir, width=1280, height=900, lang="en-US"):
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.profile = tempfile.mkdtemp(prefix="kg-chromium-")
        opts = Options()
        opts.binary_location = CHROMIUM
        for a in (
            "--headless=new",
            f"--window-size={width},{height}",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--lang={lang}",
            f"--user-data-dir={self.profile}",
        ):
            opts.add_argument(a)
        if os.geteuid() == 0:
            opts.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # An explicit driver path: Selenium never looks for (or downloads) a driver of its own.
        # HOME in the profile: Chromium's crash handlers (chrome_crashpad_handler daemonizes, so it is
        # no descendant of chromedriver) keep their database there, and quit() finds them by it.
        env = dict(os.environ, HOME=self.profile, XDG_CONFIG_HOME=os.path.join(self.profile, ".config"))
        env["XDG_CACHE_HOME"] = os.path.join(self.profile, ".cache")
        self.service = Service(
            executable_path=CHROMEDRIVER, log_path=os.path.join(out_dir, "chromedriver.log"), env=env
        )
        self.driver = webdriver.Chrome(service=self.service, options=opts)
        self.driver.set_page_load_timeout(20)
        self.driver.set_script_timeout(20)
        self.log = []  # every browser console entry so far (get_log drains chromedriver's buffer)

    # -- console messages --
    def drain_log(self):
        entries = self.driver.get_log("browser")
        self.log.extend(entries)
        return entries

    def severe(self):
        """SEVERE console entries so far (uncaught exceptions, console.error, failed requests)."""
        self.drain_log()
        return [e for e in self.log if e.get("level") == "SEVERE"]

    # -- waiting --
    def wait(self, cond, timeout, what):
        """Waits (WebDriverWait) until `cond()` is truthy; returns its value or raises TimeoutException
        naming `what`. A stale or missing element in `cond` counts as not yet."""
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        # A page that re-renders while polling replaces elements under a condition: try again.
        ignored = (StaleElementReferenceException, NoSuchElementException)
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored).until(
            lambda _d: cond(), message=what
        )

    # -- screenshots --
    def screenshot(self, name, min_colours=8):
        """Saves the viewport as `out_dir`/`name`.png and returns its distinct colour count; an
        AssertionError when it has fewer than `min_colours` (a blank or solid page)."""
        png = self.driver.get_screenshot_as_png()
        path = os.path.join(self.out_dir, name + ".png")
        with open(path, "wb") as f:
            f.write(png)
        n = png_colour_count(png)
        if n < min_colours:
            raise AssertionError(f"screenshot {path} looks blank: {n} distinct colours (< {min_colours})")
        return n

    def quit(self):
        """Ends the session, then kills by pid whatever of chromedriver's tree is still alive
        (Chromium and its helpers). The pids that needed SIGKILL."""
        proc = self.service.process
        tree = set(descendants(proc.pid)) if proc else set()
        tree |= set(self.daemons())
        try:
            self.driver.quit()
        except Exception:  # the session may already be gone; the pids below are what matters
            pass
        killed = stop_tree(proc, 10, tree | set(self.daemons())) if proc else []
        shutil.rmtree(self.profile, ignore_errors=True)
        return killed

    def daemons(self):
        """Processes outside chromedriver's tree that belong to this browser (crash handlers): their
        command line names this browser's profile directory."""
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit() and alive(int(d)) and any(self.profile in a for a in cmdline(int(d))):
                out.append(int(d))
        return out


# ---- PNG --------------------------------------------------------------------------------------


def _swar_add(a, b, n):
    """Bytewise (a + b) mod 256 of two n-byte big-endian integers, without carries between bytes."""
    m7 = int.from_bytes(b"\x7f" * n, "big")
    m8 = int.from_bytes(b"\x80" * n, "big")
    return ((a & m7) + (b & m7)) ^ ((a ^ b) & m8)


def png_decode(png):
    """(width, height, channels, rows) of an 8-bit non-interlaced grey/RGB/RGBA PNG; rows are
    bytes of width*channels. ValueError for anything else."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, ihdr = 8, [], None
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND":
            break
    if ihdr is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, colour, _, _, interlace = ihdr
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    raw = zlib.decompress(b"".join(idat))
    bpp, n = channels, width * channels
    if len(raw) != height * (n + 1):
        raise ValueError(f"PNG data is {len(raw)} bytes, expected {height * (n + 1)}")
    rows, prev = [], bytes(n)
    for y in range(height):
        f, line = raw[y * (n + 1)], raw[y * (n + 1) + 1 : (y + 1) * (n + 1)]
        if f == 0:
            cur = bytes(line)
        elif f == 1:  # Sub: a prefix sum per channel, in log2(width) bytewise additions
            x, k = int.from_bytes(line, "big"), bpp
            while k < n:
                x = _swar_add(x, x >> (8 * k), n)
                k *= 2
            cur = x.to_bytes(n, "big")
        elif f == 2:  # Up
            cur = _swar_add(int.from_bytes(line, "big"), int.from_bytes(prev, "big"), n).to_bytes(n, "big")
        elif f == 3:  # Average
            c = bytearray(n)
            for i in range(n):
                left = c[i - bpp] if i >= bpp else 0
                c[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
            cur = bytes(c)
        elif f == 4:  # Paeth
            c = bytearray(n)
            for i in range(n):
                a = c[i - bpp] if i >= bpp else 0
                b = prev[i]
                cc = prev[i - bpp] if i >= bpp else 0
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
                c[i] = (line[i] + pred) & 255
            cur = bytes(c)
        else:
            raise ValueError(f"row {y}: unknown filter {f}")
        rows.append(cur)
        prev = cur
    return width, height, channels, rows


def png_colour_count(png, limit=4096):
    """Distinct pixel colours of a PNG (counting stops at `limit`)."""
    _, _, channels, rows = png_decode(png)
    seen = set()
    for row in rows:
        seen.update(row[i : i + channels] for i in range(0, len(row), channels))
        if len(seen) >= limit:
            break
    return len(seen)
