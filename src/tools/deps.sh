#!/usr/bin/env bash
# Installs the Debian packages relocfs needs to build, test and demo, when
# they are missing. As root it runs apt-get; otherwise it names what to
# install and fails.
set -euo pipefail

pkgs=(build-essential pkg-config libfuse3-dev fuse3 libxxhash-dev libconfig-dev liburing-dev
      bats bats-support bats-assert bats-file attr acl e2fsprogs util-linux
      python3 xxhash cppcheck clang-tidy fio)
[ "${RELOCFS_BENCH:-}" = 1 ] && pkgs+=(bindfs mergerfs rsync)

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
