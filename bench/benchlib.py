"""What the Python benches share: free loopback ports, a node's JSON API, waiting for a condition."""
import json
import os
import signal
import subprocess
import socket
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path, timeout=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return json.loads(r.read())


def post(port, path, body, timeout=60):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def wait_for(cond, timeout, what):
    """Polls `cond` every 20 ms until it is true; OSError (a node not answering yet) counts as false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


def stop_group(p, timeout=60):
    """SIGTERM to the process group of `p` (a node started with start_new_session=True), SIGKILL if it
    has not exited within `timeout` seconds; reaps it."""
    os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def check_no_failed_tasks(port):
    """Raises when the node on `port` lists a failed task (a bench figure from lost work is no figure)."""
    failed = get(port, "/api/v1/tasks?status=failed&limit=5")["tasks"]
    if failed:
        raise RuntimeError(f"tasks failed: {failed}")
