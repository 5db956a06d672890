#!/usr/bin/env bash
# Make sure a Chromium for the browser tests (tests/browser) is installed.
# Never fails the build: when Chromium cannot be installed here, it says why and
# exits 0; the browser tests then skip with that reason.
# Honours WB_CHROMIUM (a Chromium binary to use instead of /usr/bin/chromium).
set -u

if [ -n "${WB_CHROMIUM:-}" ] && [ -x "${WB_CHROMIUM}" ]; then
    exit 0
fi
if [ -x /usr/bin/chromium ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: no /usr/bin/chromium and no apt-get here; browser tests will be skipped" >&2
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "ensure_chromium: no /usr/bin/chromium, not root and no passwordless sudo;" \
             "install it with 'apt-get install chromium' (browser tests will be skipped)" >&2
        exit 0
    fi
fi

echo "ensure_chromium: installing chromium with apt-get (for tests/browser) ..." >&2
start=$(date +%s)
log=$(mktemp "${TMPDIR:-/tmp}/ensure_chromium.XXXXXX.log")
if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 \
   && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >>"$log" 2>&1; then
    echo "ensure_chromium: chromium installed in $(( $(date +%s) - start )) s" >&2
    rm -f "$log"
else
    echo "ensure_chromium: apt-get could not install chromium (log: $log, last lines below);" \
         "browser tests will be skipped" >&2
    tail -n 5 "$log" >&2
fi
exit 0
