#!/usr/bin/env bash
# Dates release TAG's entry in CHANGELOG.md (Keep a Changelog). Step 3 of
# docs/releasing.md. Two cases:
#  - an entry prepared in advance, "## [X.Y.Z] - unreleased" (the first
#    release's): it gets the date; "## [Unreleased]" must then be empty (move
#    its items into the entry by hand first);
#  - otherwise what is under "## [Unreleased]" becomes "## [X.Y.Z] - DATE",
#    and an empty Unreleased section stays above it for the next changes.
# Usage: changelog.sh vX.Y.Z [YYYY-MM-DD]   (default date: today, UTC)
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:?usage: changelog.sh vX.Y.Z [YYYY-MM-DD]}
[[ $tag =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "$tag: a release tag is vMAJOR.MINOR.PATCH" >&2; exit 1; }
day=${2:-$(date -u +%F)}
[[ $day =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || { echo "$day: the date is YYYY-MM-DD" >&2; exit 1; }
ver=${tag#v}
grep -q '^## \[Unreleased\]$' CHANGELOG.md || { echo "CHANGELOG.md has no '## [Unreleased]' section" >&2; exit 1; }
if grep -qx "## \[$ver\] - unreleased" CHANGELOG.md; then
  # Anything but blank lines between "## [Unreleased]" and the next entry?
  if awk '/^## \[Unreleased\]$/{u=1; next} /^## \[/{u=0} u && NF' CHANGELOG.md | grep -q .; then
    echo "CHANGELOG.md: [$ver] is prepared but [Unreleased] has items too: move them into [$ver] first" >&2; exit 1
  fi
  VER=$ver DAY=$day perl -0pi -e 's/^## \[\Q$ENV{VER}\E\] - unreleased\n(\n<!--[^\n]*-->\n)?/## [$ENV{VER}] - $ENV{DAY}\n/m' CHANGELOG.md
  echo "CHANGELOG.md: the prepared entry [$ver] is dated $day"
  exit 0
fi
grep -q "^## \[$ver\]" CHANGELOG.md && { echo "CHANGELOG.md already has an entry for $ver" >&2; exit 1; }
VER=$ver DAY=$day perl -0pi -e 's/^## \[Unreleased\]\n/## [Unreleased]\n\n## [$ENV{VER}] - $ENV{DAY}\n/m' CHANGELOG.md
echo "CHANGELOG.md: the Unreleased changes are now [$ver] - $day; review them before committing"
