#!/usr/bin/env python3
# Verifies the Kubernetes manifests of deploy/kubernetes/base: renders the kustomization (its
# `resources` list, the only kustomize feature the base uses; anything else is refused rather
# than ignored), validates every object against the Kubernetes OpenAPI schemas of K8S_VERSION
# with kubernetes-validate in strict mode (an unknown or misspelt field fails), then checks what
# a schema cannot: probes on the port each role serves them on, 0.0.0.0 listen addresses, a
# grace period longer than preStop + KG_STOP_TIMEOUT_SECONDS, a worker memory limit covering
# (1 + KG_MAX_TOTAL_PROCESSES) x KG_MAX_RSS_MB, selectors that match, the HPA's metric served
# by the prometheus-adapter rule from a metric kgflow defines (src/api/metrics.cc today), placeholder secrets.
# With KGFLOW_BINARY, each Deployment's environment (ConfigMap + Secret + its own env) is given
# to `kgflow check-config`, which must accept it, name the role, and show no secret value.
# Usage: k8s_validate.py [SOURCE_DIR [KGFLOW_BINARY]]   (run with build-tools/venv's python, or re-execs it)
import os
import re
import subprocess
import sys

K8S_VERSION = "1.30.0"
SOURCE = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))

try:
    import kubernetes_validate
    import yaml
except ImportError:
    venv = os.path.join(SOURCE, "build-tools", "venv")
    venv_python = os.path.join(venv, "bin", "python")
    if os.path.exists(venv_python) and os.path.realpath(sys.prefix) != os.path.realpath(venv):
        os.execv(venv_python, [venv_python, os.path.abspath(__file__), SOURCE] + sys.argv[2:])
    sys.exit("kubernetes-validate is not installed: run `make deps` (it creates build-tools/venv)")

BASE = os.path.join(SOURCE, "deploy", "kubernetes", "base")
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def render(base):
    with open(os.path.join(base, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    extra = set(k) - {"apiVersion", "kind", "resources"}
    if extra:
        sys.exit(f"kustomization.yaml uses {sorted(extra)}: this renderer only applies `resources`")
    docs = []
    for r in k["resources"]:
        with open(os.path.join(base, r)) as f:
            for d in yaml.safe_load_all(f):
                if d is not None:
                    docs.append((r, d))
    return docs


def mebibytes(q):
    m = re.fullmatch(r"(\d+)(Mi|Gi)", q)
    if not m:
        fail(f"memory quantity {q!r}: write it in Mi or Gi")
        return 0
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


docs = render(BASE)
print(f"rendered {len(docs)} objects from {BASE}")
objs = {}
for src, d in docs:
    name = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        print(f"ok   {name} ({src}) against Kubernetes {K8S_VERSION}, strict")
    except kubernetes_validate.ValidationError as e:
        fail(f"{name} ({src}): {'.'.join(str(p) for p in e.path)}: {e.message}")
    except kubernetes_validate.SchemaNotFoundError as e:
        fail(f"{name} ({src}): no schema: {e}")
    objs[name] = d

cm = objs.get("ConfigMap/kgflow-env", {}).get("data", {})
stop_timeout = int(cm.get("KG_STOP_TIMEOUT_SECONDS", "30"))

# Each role serves its probes on one address: web on KG_HTTP_ADDR, worker on KG_HEALTH_ADDR (src/cli/node.cc).
for dep, role, addr_var in (("kgflow-web", "web", "KG_HTTP_ADDR"), ("kgflow-worker", "worker", "KG_HEALTH_ADDR")):
    d = objs.get(f"Deployment/{dep}")
    if not d:
        fail(f"Deployment/{dep} missing")
        continue
    spec = d["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    if env.get("NODE_ROLE") != role:
        fail(f"{dep}: NODE_ROLE is {env.get('NODE_ROLE')!r}, not {role!r}")
    addr = env.get(addr_var, "")
    if not addr.startswith("0.0.0.0:"):
        fail(f"{dep}: {addr_var}={addr!r} must bind 0.0.0.0 in a pod")
    port = int(addr.rsplit(":", 1)[-1] or 0)
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = c.get(probe, {}).get("httpGet", {})
        p = ports.get(g.get("port"), g.get("port"))
        if g.get("path") != path or p != port:
            fail(f"{dep}: {probe} is {g.get('path')} on port {p}, expected {path} on {port} ({addr_var})")
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_s = int(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else None
    if pre_s is None:
        fail(f"{dep}: preStop must be `sleep N`")
        pre_s = 0
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace <= pre_s + stop_timeout + 2:
        fail(f"{dep}: terminationGracePeriodSeconds {grace} <= preStop {pre_s} + KG_STOP_TIMEOUT_SECONDS {stop_timeout} + 2")
    sc, psc = c.get("securityContext", {}), spec.get("securityContext", {})
    if not psc.get("runAsNonRoot") or not sc.get("readOnlyRootFilesystem"):
        fail(f"{dep}: must run as non-root with a read-only root filesystem")
    mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
    for need in (cm.get("KG_DATA_DIR", "/var/lib/kgflow"), "/tmp"):
        if need not in mounts:
            fail(f"{dep}: {need} is not mounted (read-only root filesystem)")
    refs = {r.get("configMapRef", {}).get("name") or r.get("secretRef", {}).get("name") for r in c.get("envFrom", [])}
    if refs != {"kgflow-env", "kgflow-secrets"}:
        fail(f"{dep}: envFrom {refs}")
    if role == "worker":
        limit = mebibytes(c["resources"]["limits"]["memory"])
        need = (1 + int(cm["KG_MAX_TOTAL_PROCESSES"])) * int(cm["KG_MAX_RSS_MB"])
        if limit < need:
            fail(f"{dep}: memory limit {limit}Mi < (1 + KG_MAX_TOTAL_PROCESSES) x KG_MAX_RSS_MB = {need}Mi")
        else:
            print(f"ok   worker memory limit {limit}Mi >= (1 + {cm['KG_MAX_TOTAL_PROCESSES']}) x {cm['KG_MAX_RSS_MB']}Mi")

# Selectors: each Service and PodDisruptionBudget selects the pods of one Deployment.
pod_labels = {n: o["spec"]["template"]["metadata"]["labels"] for n, o in objs.items() if n.startswith("Deployment/")}
for n, o in objs.items():
    if n.startswith("Service/"):
        sel = o["spec"]["selector"]
    elif n.startswith("PodDisruptionBudget/"):
        sel = o["spec"]["selector"]["matchLabels"]
    else:
        continue
    hits = [d for d, labels in pod_labels.items() if all(labels.get(k) == v for k, v in sel.items())]
    if len(hits) != 1:
        fail(f"{n}: selector {sel} matches {hits}, expected one Deployment")

# Autoscaling: the HPA scales the workers on the metric the adapter rule serves, from a real metric.
hpa = objs.get("HorizontalPodAutoscaler/kgflow-worker")
if not hpa:
    fail("HorizontalPodAutoscaler/kgflow-worker missing")
else:
    if hpa["spec"]["scaleTargetRef"]["name"] not in [n.split("/")[1] for n in pod_labels if "worker" in n]:
        fail("HPA does not scale the worker Deployment")
    with open(os.path.join(SOURCE, "deploy", "kubernetes", "prometheus-adapter-rules.yaml")) as f:
        rules = yaml.safe_load(f)["rules"]["external"]
    served = {r["name"]["as"]: r for r in rules}
    metrics_src = ""  # every source file: the metric's name appears quoted where it is defined
    for root, _, files in os.walk(os.path.join(SOURCE, "src")):
        for fn in files:
            if fn.endswith((".cc", ".h")):
                with open(os.path.join(root, fn)) as f:
                    metrics_src += f.read()
    for m in hpa["spec"]["metrics"]:
        name = m["external"]["metric"]["name"]
        if name not in served:
            fail(f"HPA metric {name} is not served by prometheus-adapter-rules.yaml")
            continue
        series = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", served[name]["seriesQuery"]).group(0)
        if f'"{series}"' not in metrics_src:
            fail(f"adapter rule for {name} reads {series}, which no file under src/ defines")
        else:
            print(f"ok   HPA metric {name} <- {series} (defined in src/)")

# The Secret is a template: the documented keys, placeholder values only.
sec = objs.get("Secret/kgflow-secrets", {}).get("stringData", {})
for k in ("DB_PASSWORD", "REDIS_PASSWORD", "NEO4J_PASSWORD", "KG_API_TOKEN", "DEEPSEEK_API_KEY"):
    if k not in sec:
        fail(f"Secret/kgflow-secrets lacks {k}")
for k, v in sec.items():
    if v not in ("", "change-me"):
        fail(f"Secret/kgflow-secrets {k} holds a value other than the placeholder: keep real secrets out of git")

# The binary accepts each pod's environment as it is.
if len(sys.argv) > 2:
    for dep in ("kgflow-web", "kgflow-worker"):
        d = objs.get(f"Deployment/{dep}")
        if not d:
            continue
        (c,) = d["spec"]["template"]["spec"]["containers"]
        env = {"PATH": "/usr/bin:/bin"}
        env.update(cm)
        env.update(sec)
        env.update({e["name"]: e["value"] for e in c.get("env", [])})
        r = subprocess.run([sys.argv[2], "check-config"], env=env, capture_output=True, text=True)
        out = r.stdout + r.stderr
        role = env.get("NODE_ROLE")
        if r.returncode != 0:
            fail(f"{dep}: kgflow check-config exits {r.returncode} on the pod's environment: {out.strip()[-300:]}")
        elif f"NODE_ROLE={role}" not in out:
            fail(f"{dep}: check-config does not show NODE_ROLE={role}")
        elif any(v and v in out for v in sec.values()):
            fail(f"{dep}: check-config shows a secret value")
        else:
            print(f"ok   {dep}: kgflow check-config accepts the pod's environment (NODE_ROLE={role})")

if failures:
    print(f"{len(failures)} problem(s)")
    sys.exit(1)
print("all manifests valid")
