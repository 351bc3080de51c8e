#!/bin/sh
# Adds the rustup targets and components that are missing, and only those.
#
#   scripts/ensure-rust.sh --target wasm32-wasip1 --component clippy ...
set -eu

if ! command -v rustup >/dev/null 2>&1; then
    echo "ensure-rust: rustup not found: install Rust with rustup (https://rustup.rs), then run again" >&2
    exit 1
fi
targets=$(rustup target list --installed)
components=$(rustup component list --installed)
while [ $# -ge 2 ]; do
    case $1 in
        --target)
            echo "$targets" | grep -qx "$2" || rustup target add "$2" >/dev/null ;;
        --component)
            # Installed components are listed with their host triple: clippy-x86_64-unknown-linux-gnu.
            echo "$components" | grep -q "^$2-" || rustup component add "$2" >/dev/null ;;
        *)
            echo "ensure-rust: unknown option $1" >&2
            exit 2 ;;
    esac
    shift 2
done
