#!/usr/bin/env bash
# buf breaking for `make lint`: today's schemas against those of the last
# release tag (v*), or against the committed baseline image
# (breaking-baseline.binpb) until the first tag. Then the fixture case: a
# deliberately breaking edit of a copy of the schemas must be refused, and the
# unedited copy accepted, so the gate is known to bite.
# Usage: breaking-check.sh BUF-COMMAND...   (run from proto/)
set -euo pipefail
buf=("$@")
tag=$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null || true)
if [ -n "$tag" ]; then
  against="$(git rev-parse --show-toplevel)/.git#tag=$tag,subdir=proto"
else
  against=breaking-baseline.binpb
fi
echo "buf breaking against ${tag:-the committed baseline (no release tag yet)}"
"${buf[@]}" breaking --against "$against"

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r buf.yaml demarche "$tmp/"
rm -f "$tmp"/demarche/v1/*.go "$tmp"/demarche/v1/*.binpb
(cd "$tmp" && "${buf[@]}" breaking --against "$OLDPWD/breaking-baseline.binpb") \
  || { echo "breaking fixture: an unedited copy of the schemas was refused" >&2; exit 1; }
# The fixture: StageEntered.stage changes type (enum Stage -> string), which
# breaks every subscriber that decodes the field.
perl -0pi -e 's/(message StageEntered \{[^}]*?)\bStage stage = 2;/$1string stage = 2;/s' "$tmp/demarche/v1/events.proto"
grep -q '^  string stage = 2;' "$tmp/demarche/v1/events.proto" || { echo "breaking fixture: could not edit StageEntered (update breaking-check.sh)" >&2; exit 1; }
if out=$(cd "$tmp" && "${buf[@]}" breaking --against "$OLDPWD/breaking-baseline.binpb" 2>&1); then
  echo "breaking fixture: changing StageEntered.stage from enum to string was NOT caught" >&2; exit 1
fi
echo "$out" | grep -q 'StageEntered' || { echo "breaking fixture: unexpected buf output: $out" >&2; exit 1; }
echo "buf breaking: fixture change caught ($(echo "$out" | head -1 | sed 's/^[^:]*:[0-9]*:[0-9]*://'))"
