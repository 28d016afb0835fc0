#!/usr/bin/env bash
# Fetches the web UI's only third-party code, xterm.js and its fit addon,
# from the npm registry, and vendors the few files the UI loads into
# internal/host/web/ui/static/vendor/xterm/, where go:embed takes them.
#
#   scripts/fetch-web-assets.sh          fetch, verify, (re)write the files
#   scripts/fetch-web-assets.sh --check  fetch, verify, and compare with the
#                                        committed files; change nothing
#
# Each package is pinned by version and by the sha512 integrity the
# registry published for it: the registry's metadata must report that
# integrity, and the downloaded tarball must hash to it, or the script
# stops. Builds never run this script: they use the committed files. The
# Go test of package ui checks the committed files against SHA256SUMS,
# which this script writes next to them with the pins it verified.
#
# Needs curl, tar, sha256sum and node (to read the registry's JSON and
# hash the tarballs). Reaches only the npm registry.
set -euo pipefail

REGISTRY=${NPM_REGISTRY:-https://registry.npmjs.org}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/internal/host/web/ui/static/vendor/xterm"

# name version integrity (sha512, base64, as the registry's dist.integrity)
# and the files to take: tarball path=vendored name.
PACKAGES=(
    "@xterm/xterm|6.0.0|sha512-TQwDdQGtwwDt+2cgKDLn0IRaSxYu1tSUjgKarSDkUM0ZNiSRXFpjxEsvc/Zgc5kq5omJ+V0a8/kIM2WD3sMOYg==|package/lib/xterm.mjs=xterm.mjs package/css/xterm.css=xterm.css package/LICENSE=xterm.LICENSE"
    # 0.11.0 is the fit addon released with xterm 6.0.0 (two days after it,
    # from the same repository); 0.10.0 predates xterm 6.
    "@xterm/addon-fit|0.11.0|sha512-jYcgT6xtVYhnhgxh3QgYDnnNMYTcf8ElbxxFzX0IZo+vabQqSPAjC3c1wJrKB5E19VwQei89QCiZZP86DCPF7g==|package/lib/addon-fit.mjs=addon-fit.mjs package/LICENSE=addon-fit.LICENSE"
)

check=false
case "${1:-}" in
"") ;;
--check) check=true ;;
*)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

for tool in curl tar sha256sum node; do
    command -v "$tool" >/dev/null || {
        echo "fetch-web-assets.sh: $tool is needed (apt-get install it)" >&2
        exit 1
    }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out="$work/out"
mkdir -p "$out"

sums="$out/SHA256SUMS"
{
    echo "# Written by scripts/fetch-web-assets.sh from these npm packages,"
    echo "# each verified against its pinned sha512 integrity:"
} >"$sums"

for entry in "${PACKAGES[@]}"; do
    IFS='|' read -r name version integrity files <<<"$entry"
    # The registry's metadata for this exact version.
    meta="$work/meta.json"
    curl -fsS --retry 3 -o "$meta" "$REGISTRY/${name/\//%2f}/$version"
    read -r reg_integrity tarball < <(node -e '
        const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        if (m.name !== process.argv[2] || m.version !== process.argv[3]) { console.error("metadata is for " + m.name + "@" + m.version); process.exit(1); }
        console.log(m.dist.integrity + " " + m.dist.tarball);' "$meta" "$name" "$version")
    if [ "$reg_integrity" != "$integrity" ]; then
        echo "fetch-web-assets.sh: $name@$version: the registry reports integrity $reg_integrity, pinned is $integrity; refusing" >&2
        exit 1
    fi
    case "$tarball" in
    "$REGISTRY"/*) ;;
    *)
        echo "fetch-web-assets.sh: $name@$version: tarball $tarball is not on $REGISTRY; refusing" >&2
        exit 1
        ;;
    esac
    tgz="$work/pkg.tgz"
    curl -fsS --retry 3 -o "$tgz" "$tarball"
    got="sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tgz")"
    if [ "$got" != "$integrity" ]; then
        echo "fetch-web-assets.sh: $name@$version: the tarball hashes to $got, pinned is $integrity; refusing" >&2
        exit 1
    fi
    echo "# $name@$version $integrity" >>"$sums"
    x="$work/x"
    rm -rf "$x"
    mkdir -p "$x"
    tar -xzf "$tgz" -C "$x" --no-same-owner --no-same-permissions
    for f in $files; do
        src=${f%%=*}
        dst=${f#*=}
        [ -f "$x/$src" ] && [ ! -L "$x/$src" ] || {
            echo "fetch-web-assets.sh: $name@$version has no regular file $src" >&2
            exit 1
        }
        cp "$x/$src" "$out/$dst"
        chmod 0644 "$out/$dst"
    done
done
(cd "$out" && sha256sum $(ls | grep -v '^SHA256SUMS$' | LC_ALL=C sort)) >>"$sums"

if $check; then
    if diff -r "$out" "$DEST" >"$work/diff" 2>&1; then
        echo "fetch-web-assets.sh: the committed files in ${DEST#"$ROOT"/} match the pinned packages"
        exit 0
    fi
    cat "$work/diff" | head -40 >&2
    echo "fetch-web-assets.sh: ${DEST#"$ROOT"/} differs from the pinned packages: run scripts/fetch-web-assets.sh and commit the result" >&2
    exit 1
fi
rm -rf "$DEST"
mkdir -p "$DEST"
cp "$out"/* "$DEST"/
echo "fetch-web-assets.sh: wrote ${DEST#"$ROOT"/}:"
sed -n '/^[0-9a-f]/p' "$DEST/SHA256SUMS"
