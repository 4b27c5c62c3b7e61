#!/usr/bin/env bash
# Set up what the real-browser map tests need, from Debian packages only:
#   chromium  driven by playwright through executable_path=/usr/bin/chromium
#             (no browser build is ever downloaded).
# The map pages carry Leaflet and d3 themselves (from the PyPI packages
# xstatic-leaflet and xstatic-d3), so the tests need nothing else.
# Installs with apt-get (as root, or with passwordless sudo) only what is
# missing, waiting while another apt or dpkg holds the lock. When it cannot
# install, it says so and exits 0: the browser tests then skip with that reason.
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
# Another apt or dpkg (unattended upgrades on a fresh machine) may hold the lock: wait for it, up to
# APT_LOCK_WAIT seconds, instead of giving up. apt waits for the dpkg lock itself (DPkg::Lock::Timeout);
# the loop also covers the lists lock of `apt-get update` and older apt versions.
wait_s=${APT_LOCK_WAIT:-900}
apt_waiting() {
    local deadline=$((SECONDS + wait_s)) log
    log=$(mktemp)
    while true; do
        if $SUDO apt-get -o DPkg::Lock::Timeout="$wait_s" "$@" >"$log" 2>&1; then
            rm -f "$log"
            return 0
        fi
        if grep -qiE "could not get lock|unable to lock|is another process using it" "$log" && [ $SECONDS -lt $deadline ]; then
            echo "ensure-chromium: apt is busy (another install holds its lock); waiting..." >&2
            sleep 5
            continue
        fi
        cat "$log" >&2
        rm -f "$log"
        return 1
    done
}
if ! { apt_waiting update -qq && apt_waiting install -y -qq --no-install-recommends "${need[@]}"; }; then
    echo "ensure-chromium: apt-get could not install ${need[*]}; browser tests will be skipped" >&2
    exit 0
fi
