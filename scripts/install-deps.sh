#!/usr/bin/env bash
# Installs the host packages banger and its tests use, on Debian or Ubuntu.
# Run as root. Safe to re-run.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (sudo $0)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    ca-certificates curl unzip git make gcc cpio util-linux \
    lz4 xz-utils zstd bzip2 systemd \
    qemu-system-x86 qemu-utils \
    e2fsprogs xfsprogs debootstrap \
    iproute2 nftables kmod openssh-client \
    tmux \
    chromium fonts-dejavu-core \
    >/dev/null
# chromium drives the web UI's browser tests (chromedp) and `make
# screenshots`; fonts-dejavu-core gives its headless pages readable text.
# As root, chromium refuses to start without --no-sandbox: the tests pass
# it (with --headless and --disable-gpu) when they run as root, as in CI.
# Check by hand: chromium --headless --no-sandbox --dump-dom about:blank
# Go: the distribution's is too old (Debian 12 ships 1.19); install-go.sh
# fetches the toolchain go.mod names from the Go module proxy, checked
# against its pinned hash, unless a recent enough Go is there.
"$(dirname "$0")/install-go.sh"
echo "install-deps.sh: host packages installed"
