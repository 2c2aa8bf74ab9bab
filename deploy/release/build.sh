#!/usr/bin/env bash
# The one definition of a release build of demarche, used by `make release`,
# the container build (deploy/compose/Dockerfile) and the reproducibility test
# (devstack/release). Two runs on the same commit with the Go of go.work give
# the same bytes, in any folder, on any machine:
#   -trimpath          no path of this machine in the binary
#   -buildvcs=false    no VCS stamp (the container build has no .git); the
#                      commit, its time and the version are set with -X instead
#   -s -w              no symbol table or DWARF (stripped)
#   -buildid=          no build id (it hashes the inputs' paths and the cache)
#   CGO_ENABLED=0      a static binary: every dependency is pure Go (the
#                      embedded Temporal's SQLite is modernc.org/sqlite)
# and the date stamped is the commit's, never the time of the build.
#
# Usage: build.sh OUTDIR GOOS GOARCH   writes OUTDIR/demarche_GOOS_GOARCH
#        build.sh --print              prints the VERSION, COMMIT and DATE it would stamp
# Env:   VERSION, COMMIT, DATE override what git says (the container build
#        passes them as build arguments); PKG and NAME build another main
#        package the same way (the image's nats-server).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${VERSION:-}" ]; then
  # The release tag at HEAD (v0.1.0), else the nearest one and the commits
  # since (v0.1.0-3-gabcdef0), else devel-<commit>; "-dirty" for a tree with
  # uncommitted changes, which is never a release.
  VERSION=$(git describe --tags --match 'v*' --dirty 2>/dev/null) \
    || VERSION="devel-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
fi
: "${COMMIT:=$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
: "${DATE:=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo unknown)}"

if [ "${1:-}" = "--print" ]; then
  printf 'VERSION=%s\nCOMMIT=%s\nDATE=%s\n' "$VERSION" "$COMMIT" "$DATE"
  exit 0
fi
[ $# -eq 3 ] || { echo "usage: $0 OUTDIR GOOS GOARCH | --print" >&2; exit 2; }
out=$1 goos=$2 goarch=$3
pkg=${PKG:-./devstack/cmd/demarche}
name=${NAME:-demarche}
cli=github.com/demarche/demarche/services/cli
mkdir -p "$out"
# Only what is named here reaches the compiler: GOFLAGS and the
# microarchitecture levels of the caller's environment would change the bytes.
env -u GOFLAGS -u GOAMD64 -u GOARM64 -u GOEXPERIMENT CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" \
  go build -trimpath -buildvcs=false \
  -ldflags "-s -w -buildid= -X $cli.version=$VERSION -X $cli.commit=$COMMIT -X $cli.date=$DATE" \
  -o "$out/${name}_${goos}_${goarch}" "$pkg"
