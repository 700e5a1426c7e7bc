#!/bin/sh
# Builds the console's static assets into OUT_DIR: the page (web/src/*.html, *.js, *.css) and the
# one library (cytoscape, from the lockfile). npm installs into OUT_DIR.npm, next to OUT_DIR, so
# nothing is written into the source tree and two build directories never share a node_modules.
# Usage: web/build.sh OUT_DIR
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
npm_dir="$out.npm"
mkdir -p "$npm_dir"
cp "$here/package.json" "$here/package-lock.json" "$npm_dir"/
# The lockfile pins every package; npm ci uses the local cache first when it has them.
(cd "$npm_dir" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)
# Only the page's own kinds of file: an editor's swap file or a stray note is not served.
for f in "$here"/src/*.html "$here"/src/*.js "$here"/src/*.css; do
  cp "$f" "$out"/
done
cp "$npm_dir/node_modules/cytoscape/dist/cytoscape.min.js" "$out"/
