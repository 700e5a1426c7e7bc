#!/bin/sh
# Refreshes the README's console screenshots (docs/images/console-*.png) from the browser test's own
# screenshots: run `ctest -R ConsoleBrowser` in BUILD first. Scaled to 960 px wide with 256 colours
# (Debian's imagemagick, /usr/bin/convert; not needed by make test) to keep the repository small.
# Usage: scripts/readme_screenshots.sh [BUILD]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
shots="${1:-$root/build}/console-shots/console"
out="$root/docs/images"
mkdir -p "$out"
for pair in cluster:cluster cluster-zh:cluster-zh queues:queues tasks:tasks task-chunks:task \
            graph:graph graph-provenance:graph-provenance; do
  from="$shots/${pair%%:*}.png"
  to="$out/console-${pair#*:}.png"
  [ -f "$from" ] || { echo "missing $from: run ctest -R ConsoleBrowser first" >&2; exit 1; }
  /usr/bin/convert "$from" -resize 960x -strip -colors 256 "PNG8:$to"
  echo "$to $(wc -c <"$to") bytes"
done
