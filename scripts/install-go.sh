#!/usr/bin/env bash
# Puts the Go toolchain banger builds with (go.mod's go line) at
# /usr/local/go when the host has no Go or an older one — Debian 12 ships
# 1.19, Ubuntu 24.04 1.22. It downloads the toolchain the way the go
# command's GOTOOLCHAIN does (the module golang.org/toolchain from the Go
# module proxy) and checks the zip against the hash pinned below before
# anything is installed. Safe to re-run: a recent enough Go is left alone.
#
# Environment (tests set these): GOPROXY_URL (default
# https://proxy.golang.org), GO_DEST (default /usr/local/go),
# GO_TOOLCHAIN_H1 (the expected zip hash, default the pin for this
# architecture).
set -euo pipefail

GO_VERSION=1.26.8
# dirhash h1 of golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64 (the
# hash go.sum and sum.golang.org record for it).
GO_H1_amd64="h1:ZOmGe1OnfREDMIdb1Qi4G9JSuDPBLGExZMQ4nis1RXM="

proxy="${GOPROXY_URL:-https://proxy.golang.org}"
dest="${GO_DEST:-/usr/local/go}"

say() { echo "install-go.sh: $*" >&2; }

# version_of prints the version (1.26.8) of the go binary $1, or nothing.
version_of() {
    local v
    v="$("$1" env GOVERSION 2>/dev/null || true)"
    echo "${v#go}"
}

# recent reports whether version $1 is at least GO_VERSION.
recent() {
    [ -n "$1" ] && [ "$(printf '%s\n%s\n' "$GO_VERSION" "$1" | sort -V | head -n1)" = "$GO_VERSION" ]
}

for candidate in "$(command -v go 2>/dev/null || true)" "$dest/bin/go"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
        v="$(version_of "$candidate")"
        if recent "$v"; then
            say "Go $v at $candidate is recent enough (banger needs $GO_VERSION)"
            exit 0
        fi
        say "Go ${v:-of unknown version} at $candidate is older than $GO_VERSION"
    fi
done

case "$(uname -m)" in
x86_64) arch=amd64 ;;
*)
    say "no pinned Go toolchain for $(uname -m): install Go $GO_VERSION yourself (https://go.dev/doc/install) at $dest"
    exit 1
    ;;
esac
want="${GO_TOOLCHAIN_H1:-$(eval echo "\${GO_H1_$arch:-}")}"
for tool in curl unzip sha256sum base64 perl; do
    command -v "$tool" >/dev/null || { say "$tool is needed to fetch Go: apt-get install $tool"; exit 1; }
done

mod="golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-$arch"
url="$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-$arch.zip"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
say "fetching Go $GO_VERSION from $url"
curl -fsSL --retry 3 -o "$tmp/go.zip" "$url"

# The module's h1 hash (golang.org/x/mod/sumdb/dirhash): sha256 of the
# lines "<sha256 of file>  <name in the zip>" of every file, sorted by
# name, base64.
mkdir "$tmp/x"
unzip -q "$tmp/go.zip" -d "$tmp/x"
got="h1:$(cd "$tmp/x" && find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum |
    sha256sum | cut -d' ' -f1 | perl -ne 'chomp; print pack("H*", $_)' | base64)"
if [ "$got" != "$want" ]; then
    say "the downloaded toolchain's hash is $got, not the pinned $want: nothing installed"
    exit 1
fi
root="$tmp/x/$mod"
[ -d "$root/bin" ] || { say "the toolchain zip has no $mod/bin: nothing installed"; exit 1; }
# Module zips keep no file modes: the go command makes these executable
# when it installs a toolchain, and so does this.
chmod +x "$root"/bin/* "$root"/pkg/tool/*/* 2>/dev/null || true
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.new" "$dest.old"
mv "$root" "$dest.new"
[ -e "$dest" ] && mv "$dest" "$dest.old"
mv "$dest.new" "$dest"
rm -rf "$dest.old"
say "installed Go $(version_of "$dest/bin/go") at $dest (add $dest/bin to PATH)"
