#!/usr/bin/env bash
# Debian's Chromium for the browser test (Playwright drives it; no browser download).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "note: /usr/bin/chromium is missing and this is not a root Debian shell; the browser test will be skipped." >&2
  echo "      install it with: sudo apt-get install chromium" >&2
fi
