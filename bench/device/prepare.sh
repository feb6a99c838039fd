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
# vLLM's Marlin kernels (another baseline of torch_baselines.py, built on the device by
# bench/device/marlin_baseline.py): the kernel sources of vllm 0.20.0's sdist from PyPI, the release
# that pins the device's torch 2.11. Only its csrc/quantization/marlin and csrc/core headers are
# kept (a few hundred KB). pip cannot fetch this sdist without building it, so it is fetched by
# its PyPI address and checked against the index's SHA-256. Without PyPI the baseline is missing.
marlin_release=vllm-0.20.0
marlin_url=https://files.pythonhosted.org/packages/e7/80/9798ce5e16af5754183ef33a63dc27017e2b51c87f51cc741832ce47a2d5/$marlin_release.tar.gz
marlin_sha256=a6d50152936ee292455af3ffbe359f7a284ac43bf3b68caccf29f368e196cc72
if [ ! -f .deps/marlin/$marlin_release ]; then
  downloads=$(mktemp -d)
  if curl --silent --fail --location --output "$downloads/sdist.tar.gz" "$marlin_url" &&
     echo "$marlin_sha256  $downloads/sdist.tar.gz" | sha256sum --check --status; then
    rm -rf .deps/marlin && mkdir -p .deps/marlin
    tar -xzf "$downloads/sdist.tar.gz" -C .deps/marlin --strip-components=1 \
      "$marlin_release/LICENSE" "$marlin_release/csrc/core" "$marlin_release/csrc/quantization/marlin"
    touch .deps/marlin/$marlin_release
  else
    echo "prepare.sh: could not download $marlin_release's sources from PyPI; the Marlin baseline will be missing" >&2
  fi
  rm -rf "$downloads"
fi
rm -rf .snapshot
mkdir .snapshot
git archive HEAD | tar -x -C .snapshot
echo "prepared .deps ($(du -sh .deps | cut -f1)) and .snapshot of $(git rev-parse --short HEAD)"
