#!/usr/bin/env bash
# Installs Debian's chromium, the browser the dashboard's end-to-end test
# (services/indexpilot/internal/dashboard/browser_test.go) drives headless.
# Idempotent: does nothing when chromium is already on PATH. Needs root.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "setup-chromium: installing Debian's chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
