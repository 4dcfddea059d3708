#!/usr/bin/env bash
# Installs what the PostgreSQL store tests need besides the npm dev dependencies: Debian's
# PostgreSQL server binaries (initdb, pg_ctl, postgres). The tests start their own throwaway
# cluster from them (testkit/postgres.ts: initdb in a temporary folder, loopback only); no
# system service is started or used. Run as root (CI runs as root). Idempotent: does nothing
# when an initdb is already installed.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "pg-setup: $(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1) present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends postgresql
# The package starts a system cluster on 5432; the tests never use it, so it is stopped.
$SUDO service postgresql stop >/dev/null 2>&1 || true
ls -d /usr/lib/postgresql/*/bin/initdb
