#!/usr/bin/env python3
# Verifies the Dockerfile against what it claims (the image cannot be built here): both stages
# are debian:12-slim; the build stage installs packages only through scripts/deps.sh (no apt-get
# or package list of its own), so it installs exactly what `make deps` names; the runtime stage
# copies only the binary from the build stage, runs as a non-root user, and installs the Debian
# packages of the binary's shared libraries: every DT_NEEDED library of the built binary (objdump)
# comes from a listed package or from the base image, and every listed package but
# ca-certificates provides one of them.
# Usage: dockerfile_check.py SOURCE_DIR KGFLOW_BINARY
import os
import re
import subprocess
import sys

source, binary = sys.argv[1], sys.argv[2]
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1"}  # in debian:12-slim (Essential / required by it)
DATA_PACKAGES = {"ca-certificates"}  # no library: the CA bundle for HTTPS to LLM providers
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


with open(os.path.join(source, "Dockerfile")) as f:
    text = f.read()
# Join continuation lines, drop comments, split into stages.
lines = [l for l in re.sub(r"\\\n", " ", text).splitlines() if l.strip() and not l.lstrip().startswith("#")]
stages = []
for l in lines:
    if l.upper().startswith("FROM "):
        stages.append([l])
    elif stages:
        stages[-1].append(l)
if len(stages) != 2:
    sys.exit(f"expected a build stage and a runtime stage, found {len(stages)} FROM lines")
build, runtime = stages
for s in stages:
    if s[0].split()[1] != "debian:12-slim":
        fail(f"{s[0]!r}: base must be debian:12-slim")

# Build stage: deps.sh is the only thing that installs packages.
build_runs = " ".join(l for l in build if l.upper().startswith("RUN "))
if not re.search(r"(^|[\s;&])scripts/deps\.sh\b", build_runs):
    fail("the build stage does not run scripts/deps.sh")
if re.search(r"apt-get\s+install|apt\s+install|dpkg\s+-i", build_runs):
    fail("the build stage installs packages of its own instead of through scripts/deps.sh")
if "--target kgflow" not in build_runs:
    fail("the build stage does not build the kgflow target")
with open(os.path.join(source, "scripts", "deps.sh")) as f:
    deps_pkgs = re.search(r"packages=\((.*?)\n\)", f.read(), re.S).group(1)
deps_pkgs = {w for l in deps_pkgs.splitlines() for w in l.split("#")[0].split()}
print(f"build stage installs through scripts/deps.sh: {len(deps_pkgs)} packages")

# Runtime stage.
runtime_text = " ".join(runtime)
m = re.search(r"apt-get install ((?:\s*-\S+)*)((?:\s+[a-z0-9][a-z0-9.+-]+)+)", runtime_text)
runtime_pkgs = set(m.group(2).split()) if m else set()
if not runtime_pkgs:
    fail("the runtime stage installs no packages")
copies = [l for l in runtime if l.upper().startswith("COPY ")]
if len(copies) != 1 or not re.fullmatch(r"COPY --from=\S+ /src/build/kgflow /usr/local/bin/kgflow", copies[0].strip()):
    fail(f"the runtime stage must copy the binary only, found {copies}")
user = [l.split()[1] for l in runtime if l.upper().startswith("USER ")]
if not user or user[-1].split(":")[0] in ("0", "root"):
    fail("the runtime stage must end as a non-root USER")
if not any(l.startswith("ENTRYPOINT") and "kgflow" in l for l in runtime) or 'CMD ["start"]' not in runtime_text:
    fail("the image must run `kgflow start` by default")

# The binary's shared libraries and their packages.
needed = re.findall(r"NEEDED\s+(\S+)", subprocess.run(["objdump", "-p", binary], check=True,
                                                      capture_output=True, text=True).stdout)
cache = subprocess.run(["ldconfig", "-p"], check=True, capture_output=True, text=True).stdout
provided_by = {}
for lib in needed:
    path = next((l.split("=>")[1].strip() for l in cache.splitlines()
                 if l.strip().startswith(lib + " ") and "x86-64" in l), None)
    pkg = None
    if path:
        real = os.path.realpath(path)
        for cand in (real, real.replace("/usr/lib/", "/lib/", 1), path):  # usrmerge: dpkg knows one of them
            r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if r.returncode == 0:
                pkg = r.stdout.split(":")[0].strip()
                break
    if not pkg:
        fail(f"{lib}: no Debian package found for it")
        continue
    provided_by[lib] = pkg
    if pkg not in runtime_pkgs and pkg not in BASE_IMAGE_PACKAGES:
        fail(f"the binary needs {lib} (Debian package {pkg}), which the runtime stage does not install")
    else:
        print(f"ok   {lib} <- {pkg}")
for pkg in sorted(runtime_pkgs - DATA_PACKAGES):
    if pkg not in provided_by.values():
        fail(f"the runtime stage installs {pkg}, which provides no library the binary needs")
if failures:
    print(f"{len(failures)} problem(s)")
    sys.exit(1)
print("Dockerfile consistent with scripts/deps.sh and the binary")
