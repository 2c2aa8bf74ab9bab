#!/usr/bin/env bash
# buf breaking for `make lint`: today's schemas against the image committed
# for the last release (releases/vX.Y.Z.binpb, written by `make
# release-baseline TAG=...` when the release is cut), or against the committed
# baseline image (breaking-baseline.binpb) before the first release. The
# images are committed files, not git tags, because CI runs on a clone that
# may hold no tags. Where tags are present, each v* tag must have its image.
# Then the fixture case: a deliberately breaking edit of a copy of the schemas
# must be refused, and the unedited copy accepted, so the gate is known to bite.
# Usage: breaking-check.sh BUF-COMMAND...   (run from proto/)
set -euo pipefail
buf=("$@")
for tag in $(git tag --list 'v*' 2>/dev/null); do
  [ -f "releases/$tag.binpb" ] || { echo "release tag $tag has no schema image proto/releases/$tag.binpb: run make release-baseline TAG=$tag" >&2; exit 1; }
done
last=$( (ls releases/v*.binpb 2>/dev/null || true) | sed 's|^releases/||; s|\.binpb$||' | sort -V | tail -1)
if [ -n "$last" ]; then
  against=$PWD/releases/$last.binpb
  echo "buf breaking against release $last (proto/releases/$last.binpb)"
else
  against=$PWD/breaking-baseline.binpb
  echo "buf breaking against the committed baseline (no release yet)"
fi
"${buf[@]}" breaking --against "$against"

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r buf.yaml demarche "$tmp/"
rm -f "$tmp"/demarche/v1/*.go "$tmp"/demarche/v1/*.binpb
(cd "$tmp" && "${buf[@]}" breaking --against "$against") \
  || { echo "breaking fixture: an unedited copy of the schemas was refused" >&2; exit 1; }
# The fixture: StageEntered.stage changes type (enum Stage -> string), which
# breaks every subscriber that decodes the field.
perl -0pi -e 's/(message StageEntered \{[^}]*?)\bStage stage = 2;/$1string stage = 2;/s' "$tmp/demarche/v1/events.proto"
grep -q '^  string stage = 2;' "$tmp/demarche/v1/events.proto" || { echo "breaking fixture: could not edit StageEntered (update breaking-check.sh)" >&2; exit 1; }
if out=$(cd "$tmp" && "${buf[@]}" breaking --against "$against" 2>&1); then
  echo "breaking fixture: changing StageEntered.stage from enum to string was NOT caught" >&2; exit 1
fi
echo "$out" | grep -q 'StageEntered' || { echo "breaking fixture: unexpected buf output: $out" >&2; exit 1; }
echo "buf breaking: fixture change caught ($(echo "$out" | head -1 | sed 's/^[^:]*:[0-9]*:[0-9]*://'))"
