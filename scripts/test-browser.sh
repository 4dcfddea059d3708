#!/usr/bin/env bash
# The browser suite (test/browser): the real Node-RED editor in headless Debian Chromium, driven by
# playwright-core. Installs Chromium with apt first when it is missing (scripts/browser-setup.sh).
# Expects dist/ to be built (npm run test:browser builds first). NR_RED_JS / NR_NODE_BIN select
# another Node-RED (scripts/test-nr5.sh sets them for Node-RED 5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/browser-setup.sh
"${NR_NODE_BIN:-node}" node_modules/mocha/bin/mocha.js --no-config --timeout 60000 --exit 'dist/test/browser/**/*.browser.js'
