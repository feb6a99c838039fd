#!/usr/bin/env bash
# Prepares the two folders a device call carries (both ignored by git, listed in
# .git/info/exclude): .deps/ (the Debian packages lowbit builds with, extracted: the device
# machine reaches no package registry) and .snapshot/ (the committed tree, so uncommitted edits
# never reach the numbers). Then call the device tool with
#   command: bash .snapshot/bench/device/run.sh .snapshot     carry: [".deps", ".snapshot"]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .git/info
for folder in /.deps/ /.snapshot/; do grep -qxF "$folder" .git/info/exclude || echo "$folder" >> .git/info/exclude; done
# Re-extracted when a package of the list is missing (the list grows with the build's needs).
if [ ! -f .deps/usr/include/nettle/sha2.h ]; then
  rm -rf .deps
  downloads=$(mktemp -d)
  (cd "$downloads" && apt-get download libxbyak-dev libsqlite3-dev libsqlite3-0 libfmt-dev libfmt9 libgtest-dev \
    libcli11-dev nlohmann-json3-dev nettle-dev libnettle8)
  mkdir -p .deps
  for package in "$downloads"/*.deb; do dpkg -x "$package" .deps; done
  rm -rf "$downloads"
fi
rm -rf .snapshot
mkdir .snapshot
git archive HEAD | tar -x -C .snapshot
echo "prepared .deps ($(du -sh .deps | cut -f1)) and .snapshot of $(git rev-parse --short HEAD)"
