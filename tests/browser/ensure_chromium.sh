#!/usr/bin/env bash
# Make sure a Chromium for the browser tests (tests/browser) is installed.
# Never fails the build: when Chromium cannot be installed here, it says why and
# exits 0; the browser tests then skip with that reason.
# Honours WB_CHROMIUM (a Chromium binary to use instead of /usr/bin/chromium) and
# WB_NO_APT=1 (never run apt-get: the browser tests then skip).
# What it installs: Debian's chromium and chromium-common, no recommends (about 115 MB to
# download and 360 MB on disk, more where its libraries are missing; 1-2 minutes).
set -u

if [ -n "${WB_CHROMIUM:-}" ] && [ -x "${WB_CHROMIUM}" ]; then
    exit 0
fi
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ -n "${WB_NO_APT:-}" ]; then
    echo "ensure_chromium: no /usr/bin/chromium and WB_NO_APT is set; browser tests will be skipped" >&2
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

echo "ensure_chromium: installing Chromium with apt-get${SUDO:+ (sudo)} for the browser tests" \
     "(tests/browser drive it headless to check the JupyterLab extension; ~115 MB download," \
     "~360 MB on disk, 1-2 min; WB_NO_APT=1 skips it, WB_CHROMIUM=PATH uses another) ..." >&2
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
