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
# gemlite (a Triton int4 kernel library, one of torch_baselines.py's baselines) and its tqdm, from
# PyPI as pure-Python packages under .deps/python (run.sh puts it on PYTHONPATH; the device machine
# reaches no registry). Pinned: a baseline's version is part of its numbers. Without PyPI the
# baseline is reported as missing, not fatal.
gemlite_version=0.6.0.post2
if [ ! -f .deps/python/gemlite-$gemlite_version ]; then
  downloads=$(mktemp -d)
  if (cd "$downloads" && pip download --quiet --no-deps "gemlite==$gemlite_version" tqdm==4.67.1); then
    rm -rf .deps/python && mkdir -p .deps/python
    tar -xzf "$downloads"/gemlite-$gemlite_version.tar.gz -C "$downloads"
    cp -r "$downloads"/gemlite-$gemlite_version/gemlite .deps/python/
    python3 -m zipfile -e "$downloads"/tqdm-4.67.1-py3-none-any.whl .deps/python
    touch .deps/python/gemlite-$gemlite_version
  else
    echo "prepare.sh: could not download gemlite $gemlite_version from PyPI; the gemlite baseline will be missing" >&2
  fi
  rm -rf "$downloads"
fi
rm -rf .snapshot
mkdir .snapshot
git archive HEAD | tar -x -C .snapshot
echo "prepared .deps ($(du -sh .deps | cut -f1)) and .snapshot of $(git rev-parse --short HEAD)"
