#!/usr/bin/env bash
# The runtime tests (mocha: node tests, end-to-end, fault matrix) and the browser suite again, on
# Node-RED 5 running on Node 22. Both come from the npm registry into a temp prefix
# (scripts/nr5-setup.sh); the project's own node_modules keep Node-RED 4.1.
# Expects dist/ to be built (npm run test:nr5 builds first).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/nr5-setup.sh)"
export NR_NODE_BIN NR_RED_JS
echo "test-nr5: runtime tests on Node-RED 5 ($NR_RED_JS) with $("$NR_NODE_BIN" --version)"
"$NR_NODE_BIN" node_modules/mocha/bin/mocha.js
echo "test-nr5: browser suite on Node-RED 5"
bash scripts/test-browser.sh
