#!/usr/bin/env bash
# Set up what the real-browser map tests need, from Debian packages only:
#   chromium  driven by playwright through executable_path=/usr/bin/chromium
#             (no browser build is ever downloaded).
# The map pages carry Leaflet and d3 themselves (from the PyPI packages
# xstatic-leaflet and xstatic-d3), so the tests need nothing else.
# Installs with apt-get (as root, or with passwordless sudo) only what is
# missing. When it cannot, it says so and exits 0: the browser tests then
# skip with that reason.
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: apt-get not found; install ${need[*]} yourself (browser tests will be skipped)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "ensure-chromium: not root and no passwordless sudo; browser tests will be skipped" >&2
        exit 0
    fi
fi
echo "ensure-chromium: apt-get install ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
    echo "ensure-chromium: apt-get could not install ${need[*]}; browser tests will be skipped" >&2
    exit 0
fi
