#!/usr/bin/env bash
# Makes sure Debian's chromium is installed for the web page tests (installing it with
# apt-get when the tests run as root), and prints its path as the last line.
set -euo pipefail

browser=/usr/bin/chromium
if [ -x "$browser" ]; then
  echo "$browser"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium.sh: Debian's chromium is missing: install the chromium package (as root: apt-get install chromium)" >&2
  exit 1
fi
# One install at a time: several tests may ask at once.
exec 9>/tmp/sluice-chromium-install.lock
flock 9
if [ ! -x "$browser" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || true
  apt-get install -y -qq --no-install-recommends chromium >&2 \
    || { echo "chromium.sh: apt-get could not install chromium" >&2; exit 1; }
fi
echo "$browser"
