#!/usr/bin/env bash
# Installs kgflow's build and test dependencies from Debian packages.
# Idempotent: asks apt only for what is missing, and runs `apt-get update` only then.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
  libcpp-httplib-dev  # tests only (their HTTP client); no kgflow process loads it
  libboost1.81-dev  # Boost.Beast and Asio (header-only): the API's event-driven HTTP server
  libsqlite3-dev libcurl4-openssl-dev libssl-dev libhiredis-dev libmariadb-dev
  libtomlplusplus-dev libicu-dev googletest libgtest-dev libgmock-dev libexpat1-dev
  libcmark-gfm-dev libcmark-gfm-extensions-dev libxml2-dev  # Markdown (with tables) and HTML to text
  curl procps python3 python3-venv  # python3-venv: build-tools/venv (below)
  redis-server mariadb-server  # private test servers (scripts/test_servers.sh); no system service is used
  maven openjdk-17-jre-headless  # Neo4j 5.26 for tests, resolved from Maven Central (scripts/neo4j/pom.xml)
  python3-celery python3-redis  # bench/peers: Celery on the same redis-server, side by side
  prometheus-cpp-dev  # /metrics: prometheus-cpp's core registry and text serializer
  libsystemd-dev  # sd_notify: Type=notify units with a watchdog (deploy/systemd)
  prometheus  # tests only: promtool (rules and their unit tests) and a real Prometheus; no service is used
  clang  # only for the -Wthread-safety check of the lock annotations (scripts/thread_safety.sh)
  chromium chromium-driver python3-selenium  # browser tests only (tests/console): headless Chromium driven by Debian's Selenium 4.8
  fonts-wqy-microhei  # browser tests only: a small CJK font, so the console's Chinese labels render in screenshots
)
# The console (web/) is built with npm from its lockfile. A machine that has Node.js and npm already
# (e.g. from NodeSource, whose nodejs conflicts with Debian's npm) keeps them; otherwise Debian's.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
else
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python tools of the tests (kubernetes-validate for the Kubernetes manifests), pinned in
# tests/deploy/requirements.txt, in a virtualenv of the checkout: created only if missing,
# installed only when the pinned set is not already there. KG_DEPS_NO_VENV=1 skips it (the
# Dockerfile's build stage, which runs no tests).
[ "${KG_DEPS_NO_VENV:-0}" = 1 ] && exit 0
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/build-tools/venv"
req="$root/tests/deploy/requirements.txt"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! cmp -s "$req" "$venv/requirements.installed"; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  cp "$req" "$venv/requirements.installed"
fi
echo "deps: python tools in ${venv#"$root"/} ($(grep -c '==' "$req") pinned packages)"
