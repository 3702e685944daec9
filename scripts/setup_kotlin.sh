#!/usr/bin/env bash
# The JVM Kotlin compiler that `make test` uses to compile android_app/benchkit and run its JUnit tests.
# Source: the npm registry's `kotlin-compiler` package (the full kotlinc distribution), version pinned and the
# archive's sha256 checked; cached under .cache/kotlin like the assets, so later runs are offline.
# JUnit 4 and org.json come from Debian (junit4, libandroid-json-java); .ci/run installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=2.4.20
SHA256=c23dab400d7ce5ea8b6c909947c0ca5454189e4bb1108695b5f464500e5e950f
DEST=.cache/kotlin/kotlinc-$VERSION

if [ -x "$DEST/bin/kotlinc" ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "setup_kotlin: npm is needed once to fetch kotlin-compiler@$VERSION" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "kotlin-compiler@$VERSION" >/dev/null)
archive="$tmp/kotlin-compiler-$VERSION.tgz"
actual=$(sha256sum "$archive" | cut -d' ' -f1)
if [ "$actual" != "$SHA256" ]; then
    echo "setup_kotlin: kotlin-compiler-$VERSION.tgz has sha256 $actual, expected $SHA256" >&2
    exit 1
fi
tar -xzf "$archive" -C "$tmp"
chmod +x "$tmp"/package/bin/*
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST"
mv "$tmp/package" "$DEST"
echo "setup_kotlin: kotlinc $VERSION in $DEST"
