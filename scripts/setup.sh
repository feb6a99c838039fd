#!/usr/bin/env bash
# Installs the Debian packages lowbit builds and tests with. Does nothing when all are present.
set -euo pipefail
packages=(cmake g++ make pkg-config libxbyak-dev libsqlite3-dev libfmt-dev libgtest-dev
          libcli11-dev nlohmann-json3-dev nettle-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
