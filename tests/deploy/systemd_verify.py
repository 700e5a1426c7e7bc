#!/usr/bin/env python3
# Verifies the systemd units in deploy/systemd/ (kgflow, kgflow-worker, kgflow-web): each is
# Type=notify with NotifyAccess=main and a watchdog, KillMode=mixed, Restart=on-failure but not
# after exit 2 (a configuration error or a name held elsewhere), and a
# TimeoutStopSec above the node's longest graceful stop with the default KG_STOP_TIMEOUT_SECONDS
# (read from `kgflow check-config`: the workers' stop + 2 s, then the API's drain, at most 30 s)
# plus a margin; each runs the command its role needs; and `systemd-analyze verify` accepts all
# three without a word. The units name /usr/local/bin/kgflow, which verify requires to exist: they
# are verified as copies naming the built binary, in a temp dir. verify needs no running systemd.
# Usage: systemd_verify.py SOURCE_DIR KGFLOW_BINARY
import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile

source, binary = sys.argv[1], os.path.abspath(sys.argv[2])
UNITS = {  # unit -> (ExecStart arguments, NODE_ROLE it must set or None)
    "kgflow.service": ("start", None),
    "kgflow-worker.service": ("worker", None),
    "kgflow-web.service": ("start", "web"),
}
MARGIN_S = 10
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def seconds(value):
    """A systemd time span as seconds: 60, 60s, 1min, 1min 30s."""
    units = {"": 1, "s": 1, "sec": 1, "ms": 0.001, "min": 60, "m": 60, "h": 3600}
    total = 0
    for num, unit in re.findall(r"(\d+)\s*([a-z]*)", value):
        if unit not in units:
            raise ValueError(f"unexpected time unit in {value!r}")
        total += int(num) * units[unit]
    return total


env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
with tempfile.TemporaryDirectory() as tmp:
    env["KG_DATA_DIR"] = os.path.join(tmp, "data")
    out = subprocess.run([binary, "check-config"], env=env, check=True, capture_output=True, text=True).stdout
stop_timeout = int(re.search(r"^KG_STOP_TIMEOUT_SECONDS=(\d+)", out, re.M).group(1))
longest_stop = stop_timeout + 2 + min(stop_timeout, 30)  # supervisor stop, then the API's drain
print(f"default KG_STOP_TIMEOUT_SECONDS={stop_timeout}: longest graceful stop {longest_stop} s")

for unit, (command, role) in UNITS.items():
    path = os.path.join(source, "deploy", "systemd", unit)
    if not os.path.exists(path):
        fail(f"{unit}: missing")
        continue
    ini = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    ini.optionxform = str
    ini.read(path)
    svc = ini["Service"]
    before = len(failures)
    for key, want in [("Type", "notify"), ("NotifyAccess", "main"), ("KillMode", "mixed"), ("Restart", "on-failure"),
                      ("RestartPreventExitStatus", "2")]:
        if svc.get(key) != want:
            fail(f"{unit}: {key}={svc.get(key)}, expected {want}")
    try:
        watchdog, stop = seconds(svc.get("WatchdogSec", "0")), seconds(svc.get("TimeoutStopSec", "0"))
    except ValueError as e:
        fail(f"{unit}: {e}")
        continue
    if watchdog <= 0:
        fail(f"{unit}: no WatchdogSec")
    if stop < longest_stop + MARGIN_S:
        fail(f"{unit}: TimeoutStopSec={stop} s, below the longest graceful stop ({longest_stop} s) + {MARGIN_S} s")
    if svc.get("ExecStart", "").split() != ["/usr/local/bin/kgflow", command]:
        fail(f"{unit}: ExecStart={svc.get('ExecStart')}, expected /usr/local/bin/kgflow {command}")
    # configparser keeps the last Environment= line; read them all.
    with open(path) as f:
        envs = " ".join(l.split("=", 1)[1] for l in f if l.startswith("Environment="))
    if role and f"NODE_ROLE={role}" not in envs.split():
        fail(f"{unit}: does not set NODE_ROLE={role}")
    if len(failures) == before:
        print(f"ok   {unit}: Type=notify, WatchdogSec={svc.get('WatchdogSec')}, TimeoutStopSec={stop} s")

with tempfile.TemporaryDirectory() as tmp:
    rendered = []
    for unit in UNITS:
        src = os.path.join(source, "deploy", "systemd", unit)
        if not os.path.exists(src):
            continue
        with open(src) as f:
            text = f.read().replace("/usr/local/bin/kgflow", binary)
        dst = os.path.join(tmp, unit)
        with open(dst, "w") as f:
            f.write(text)
        rendered.append(dst)
    r = subprocess.run([shutil.which("systemd-analyze") or "systemd-analyze", "verify", *rendered],
                       capture_output=True, text=True)
    said = (r.stdout + r.stderr).strip()
    # verify exits 0 on an unknown key or a bad value ("ignoring"): any word from it is a failure.
    if r.returncode != 0 or said:
        fail(f"systemd-analyze verify (exit {r.returncode}): {said}")
    else:
        print(f"ok   systemd-analyze verify: {len(rendered)} units")

if failures:
    print(f"{len(failures)} problem(s)")
    sys.exit(1)
print("systemd units consistent")
