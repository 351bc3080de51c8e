#!/bin/sh
# Installs the Debian packages that are missing, and only those.
#
#   scripts/ensure-deb.sh PACKAGE[=COMMAND]...
#
# PACKAGE is satisfied when dpkg has it installed, or, with =COMMAND, when
# COMMAND is on PATH however it got there (binaryen=wasm-opt). The missing
# ones are installed with apt-get, through sudo when not root (sudo -n when
# there is no terminal to ask for a password). When neither works, it stops
# with one message naming the packages and the command to run.
set -eu

missing=""
for arg in "$@"; do
    package=${arg%%=*}
    command=""
    case $arg in *=*) command=${arg#*=} ;; esac
    if [ -n "$command" ] && command -v "$command" >/dev/null 2>&1; then
        continue
    fi
    if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q ' installed$'; then
        continue
    fi
    missing="$missing $package"
done
[ -z "$missing" ] && exit 0

stop() {
    echo "ensure-deb: $1" >&2
    exit 1
}

if ! command -v apt-get >/dev/null 2>&1; then
    stop "needs the Debian package(s)$missing and this system has no apt-get: install them (or their equivalents) and run again"
fi
if [ "$(id -u)" = 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    if [ -t 0 ]; then as_root="sudo"; else as_root="sudo -n"; fi
    if ! $as_root true 2>/dev/null; then
        stop "needs the Debian package(s)$missing; not root and sudo refused: run  sudo apt-get install$missing"
    fi
else
    stop "needs the Debian package(s)$missing; not root and no sudo: run as root  apt-get install$missing"
fi

echo "ensure-deb: installing$missing" >&2
# Other builds on the machine may hold dpkg's lock: wait for it rather than fail.
apt="$as_root env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300"
# shellcheck disable=SC2086 # word splitting of $apt and $missing is wanted
if ! { $apt update >/dev/null && $apt install -y --no-install-recommends $missing >/dev/null; }; then
    stop "could not install$missing (apt-get's error is above): run  ${as_root:+sudo }apt-get install$missing"
fi
