#!/usr/bin/env bash
# Debian's headless Chromium for the dashboard's browser test.
#
#   scripts/chromium.sh ensure   install the `chromium` package if /usr/bin/chromium is missing
#   scripts/chromium.sh path     print the browser's path (exit 1 if it is not installed)
#
# Installing needs root (apt-get); nothing is downloaded but Debian packages.
set -euo pipefail

CHROMIUM=${CALLGUARD_CHROMIUM:-/usr/bin/chromium}

ensure() {
    if [ -x "$CHROMIUM" ]; then
        echo "chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "chromium: $CHROMIUM is missing and installing it needs root:" >&2
        echo "  sudo apt-get update && sudo apt-get install -y chromium" >&2
        return 1
    fi
    echo "chromium: installing Debian's chromium package (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
    "$CHROMIUM" --version
}

case "${1:-}" in
    ensure) ensure ;;
    path)
        if [ -x "$CHROMIUM" ]; then echo "$CHROMIUM"; else exit 1; fi ;;
    *)
        echo "usage: $0 ensure|path" >&2
        exit 2 ;;
esac
