#!/usr/bin/env bash
# Builds the "before" kgflow for bench/http_bench.py: the binary at a pinned commit (by default
# f682b2b, the last commit whose API server is cpp-httplib), into build/baseline/kgflow, with
# build/baseline/COMMIT naming the full commit it was built from.
#
#   scripts/build_baseline.sh [COMMIT] [OUT_DIR]
#
# The sources come from `git archive` into a temporary directory (the repository and its work
# trees are left alone), built in release config (RelWithDebInfo, as the benches) with ccache
# when present, one job (a shared 2-core box), only the `kgflow` target. Skipped when OUT_DIR
# already holds a binary recorded as built from that commit. Runs that commit's own
# scripts/deps.sh first, so the packages it needs (cpp-httplib) are there even when the current
# tree no longer lists them.
# Exit codes: 0 built or already there; 1 the build failed; 2 usage (unknown commit).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
want=${1:-f682b2b}
out=${2:-$here/build/baseline}

if ! commit=$(git -C "$here" rev-parse --verify --quiet "$want^{commit}"); then
  echo "build_baseline: no commit '$want' in $here" >&2
  exit 2
fi
if [ -x "$out/kgflow" ] && [ "$(cat "$out/COMMIT" 2>/dev/null)" = "$commit" ]; then
  echo "build_baseline: $out/kgflow is already built from $commit"
  exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kgflow-baseline.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
git -C "$here" archive --format=tar "$commit" | tar -x -C "$tmp"
[ -x "$tmp/scripts/deps.sh" ] && "$tmp/scripts/deps.sh"

launcher=()
if command -v ccache >/dev/null; then
  # A base dir makes the paths in the cache key relative, so a fresh temp dir still hits.
  export CCACHE_BASEDIR="$tmp"
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
echo "build_baseline: building kgflow at $commit in $tmp"
if ! { cmake -S "$tmp" -B "$tmp/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKG_WERROR=ON "${launcher[@]}" \
         >"$tmp/configure.log" 2>&1 &&
       cmake --build "$tmp/build" -j "${BASELINE_JOBS:-1}" --target kgflow; }; then
  cat "$tmp/configure.log" >&2 || true
  echo "build_baseline: the build of $commit failed" >&2
  exit 1
fi
mkdir -p "$out"
# Replace the binary and its record together: a stale COMMIT never names a new binary.
rm -f "$out/COMMIT"
install -m 0755 "$tmp/build/kgflow" "$out/kgflow"
echo "$commit" >"$out/COMMIT"
echo "build_baseline: $out/kgflow built from $commit"
