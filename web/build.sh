#!/bin/sh
# Builds the console's static assets into OUT_DIR: the page (web/src/*) and the one library
# (cytoscape, from the lockfile). Writes nothing else into OUT_DIR.
# Usage: web/build.sh OUT_DIR
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
cd "$here"
# The lockfile pins every package; npm ci uses the local cache first when it has them.
npm ci --no-audit --no-fund --prefer-offline --loglevel=error
cp "$here"/src/* "$out"/
cp "$here/node_modules/cytoscape/dist/cytoscape.min.js" "$out"/
