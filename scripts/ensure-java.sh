#!/usr/bin/env bash
# Set up what the Spark tests need, from Debian packages only:
#   openjdk-17-jre-headless  the Java runtime pyspark starts (pyspark itself
#                            comes from PyPI through the `spark` extra).
# Installs with apt-get (as root, or with passwordless sudo) only when no
# Java 17 or newer is found. Waits for another apt/dpkg run to release its
# lock. When it cannot install, it says so and exits 0: the Spark tests then
# skip with that reason.
set -euo pipefail

java_ok() {
    local java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
    command -v "$java" >/dev/null 2>&1 || return 1
    local major
    major=$("$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
    [ -n "$major" ] && [ "$major" -ge 17 ]
}

if java_ok; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-java: apt-get not found; install Java 17+ yourself (Spark tests will be skipped)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "ensure-java: not root and no passwordless sudo; Spark tests will be skipped" >&2
        exit 0
    fi
fi
# another apt-get or dpkg (e.g. scripts/ensure-chromium.sh, unattended upgrades) may hold the lock
for _ in $(seq 1 120); do
    if ! fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock >/dev/null 2>&1; then
        break
    fi
    sleep 2
done
echo "ensure-java: apt-get install openjdk-17-jre-headless" >&2
export DEBIAN_FRONTEND=noninteractive
# the JRE's post-install step links man pages; minimal images lack the folder
$SUDO mkdir -p /usr/share/man/man1
if ! { $SUDO apt-get update -qq -o DPkg::Lock::Timeout=240 \
        && $SUDO apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=240 \
           openjdk-17-jre-headless >/dev/null; }; then
    echo "ensure-java: apt-get could not install openjdk-17-jre-headless; Spark tests will be skipped" >&2
    exit 0
fi
