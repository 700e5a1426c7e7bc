#!/usr/bin/env bash
# Checks the lock annotations (src/common/thread_annotations.h) with clang's
# -Wthread-safety: a syntax-only pass over every translation unit under src/, using the
# flags CMake recorded in BUILD/compile_commands.json. g++ builds the product; clang only
# reads it. Exit 1 on any warning.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
clang=$(command -v clang++ || true)
if [ -z "$clang" ]; then
  echo "thread-safety: clang++ is missing (make deps installs it)" >&2
  exit 1
fi
python3 - "$build/compile_commands.json" "$root" "$clang" <<'PY'
import concurrent.futures, json, os, shlex, subprocess, sys
db, root, clang = sys.argv[1], sys.argv[2], sys.argv[3]
units = [u for u in json.load(open(db)) if u["file"].startswith(root + "/src/")]
if not units:
    sys.exit("thread-safety: no src/ units in " + db)
def check(u):
    args = shlex.split(u["command"])[1:]
    keep, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT"):
            skip = True
            continue
        if a in ("-c", "-MD") or a.startswith("-fsanitize") or a == u["file"]:
            continue
        keep.append(a)
    cmd = [clang, "-fsyntax-only", "-Wthread-safety", "-Wthread-safety-beta", "-Werror", "-Wno-unknown-warning-option"] + \
          [a for a in keep if not a.startswith("-W") or a in ("-Werror",)] + [u["file"]]
    return subprocess.run(cmd, cwd=u["directory"], capture_output=True, text=True)


# One clang per core: each unit is independent.
with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
    results = list(pool.map(check, units))
failed = 0
for r in results:
    if r.returncode != 0:
        failed += 1
        sys.stderr.write(r.stderr)
print(f"thread-safety: {len(units)} units checked, {failed} with findings")
sys.exit(1 if failed else 0)
PY
