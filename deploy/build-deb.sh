#!/usr/bin/env bash
# Builds dist/vmpooler_<version>_<arch>.deb with nfpm, a Go tool dependency
# pinned in tools/go.mod (kept out of the main module, so packaging never
# changes the pooler's own dependencies). VERSION overrides the version.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=$(go env GOARCH)
if [ -z "${VERSION:-}" ]; then
	tag=$(git describe --tags --abbrev=0 2>/dev/null || true)
	VERSION="${tag#v}"
	[ -n "$VERSION" ] || VERSION=0.0.0
	VERSION="$VERSION~git$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).$(git rev-parse --short=12 HEAD)"
fi
stage=build/deb
rm -rf "$stage"
mkdir -p "$stage" dist
CGO_ENABLED=0 go build -buildvcs=auto -trimpath -ldflags="-s -w" -o "$stage/vmpooler" .
# The installed configuration is the example with its state in the service's
# state directory (the only place the unit may write).
sed -e 's|^database = "vmpooler.db"|database = "/var/lib/vmpooler/vmpooler.db"|' \
	-e 's|^# backup_dir = "backups"|backup_dir = "/var/lib/vmpooler/backups"|' \
	vmpooler.toml.example >"$stage/vmpooler.toml"
grep -q '^database = "/var/lib/vmpooler/vmpooler.db"' "$stage/vmpooler.toml"
grep -q '^backup_dir = "/var/lib/vmpooler/backups"' "$stage/vmpooler.toml"
VERSION="$VERSION" ARCH="$arch" go tool -modfile=tools/go.mod nfpm package \
	-f deploy/nfpm.yaml -p deb -t "dist/vmpooler_${VERSION}_${arch}.deb"
echo "built dist/vmpooler_${VERSION}_${arch}.deb"
