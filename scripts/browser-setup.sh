#!/usr/bin/env bash
# Installs what the browser tests (npm run test:browser) need besides the npm dev dependencies:
# Debian's Chromium at /usr/bin/chromium. playwright-core drives it; no browser build is downloaded.
# Run as root (CI runs as root). Idempotent: does nothing when /usr/bin/chromium is already there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "browser-setup: /usr/bin/chromium present ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown'))"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# fonts-noto-core carries Persian/Arabic glyphs, so RTL help text renders in screenshots.
$SUDO apt-get install -y --no-install-recommends chromium fonts-noto-core
/usr/bin/chromium --version
