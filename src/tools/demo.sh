#!/usr/bin/env bash
# demo.sh: shows relocfs presenting a datastore of two VM homes. Builds a
# throw-away datastore on a tmpfs, mounts it with build/relocfs, looks at it
# and writes through the mount, checks that the bytes landed in the
# datastore, then unmounts and removes everything, also on failure or Ctrl-C.
# Run by `make demo` (as root: it mounts a tmpfs and a FUSE filesystem).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
RELOCFS=${RELOCFS:-$repo/build/relocfs}

if [ "$(id -u)" != 0 ]; then
	echo "demo: needs root (it mounts a tmpfs and a FUSE filesystem); try: sudo make demo" >&2
	exit 1
fi
if [ ! -x "$RELOCFS" ]; then
	echo "demo: $RELOCFS not found; run make first" >&2
	exit 1
fi

tmp=
pid=

# Is PATH a mount point? Reads the mount table only, so it cannot hang on a
# FUSE daemon that died.
is_mounted() {
	awk -v p="$1" '$2 == p { found = 1 } END { exit !found }' /proc/self/mounts
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	[ -n "$tmp" ] || exit "$rc"
	cd /
	if is_mounted "$tmp/mnt"; then
		umount "$tmp/mnt" 2>/dev/null || umount -l "$tmp/mnt"
	fi
	# relocfs exits once its mount is gone; it holds the datastore open
	# until then, so wait for it before unmounting the tmpfs.
	if [ -n "$pid" ]; then
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -TERM "$pid"
		wait "$pid" 2>/dev/null
	fi
	if is_mounted "$tmp/datastore"; then
		umount "$tmp/datastore" 2>/dev/null || umount -l "$tmp/datastore"
	fi
	if awk -v p="$tmp/" 'index($2, p) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
		echo "demo: something is still mounted under $tmp; left it in place" >&2
		rc=1
	else
		rm -rf "$tmp"
	fi
	[ "$rc" -eq 0 ] || echo "demo: FAILED (exit $rc); cleaned up" >&2
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section() {
	printf '\n==> %s\n' "$*"
}

# Prints a command (quoting what needs it), then runs it.
run() {
	local a out=
	for a in "$@"; do
		case $a in
		*[!A-Za-z0-9_./=,:%+-]*) out+=" '$a'" ;;
		*) out+=" $a" ;;
		esac
	done
	printf '$%s\n' "$out"
	"$@"
}

# sha256 of LEN MiB of FILE starting at OFFSET MiB.
range_sum() {
	dd if="$1" bs=1M skip="$2" count="$3" status=none | sha256sum | cut -d' ' -f1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/relocfs-demo.XXXXXX")
cd "$tmp"
mkdir datastore mnt state

section "1. A datastore with two VM homes (a tmpfs on $tmp/datastore)"
mount -t tmpfs -o size=256m,mode=0755 relocfs-demo datastore

# make_home NAME: a VM home as an ESXi host leaves it: config, disk
# descriptor, a sparse 4 GiB flat extent and a log.
make_home() {
	local vm=$1 home=datastore/$1
	mkdir "$home"
	cat >"$home/$vm.vmx" <<-EOF
	.encoding = "UTF-8"
	config.version = "8"
	virtualHW.version = "19"
	displayName = "$vm"
	guestOS = "debian12-64"
	memSize = "2048"
	numvcpus = "2"
	scsi0.present = "TRUE"
	scsi0.virtualDev = "pvscsi"
	scsi0:0.present = "TRUE"
	scsi0:0.fileName = "$vm.vmdk"
	ethernet0.present = "TRUE"
	ethernet0.virtualDev = "vmxnet3"
	ethernet0.networkName = "VM Network"
	nvram = "$vm.nvram"
	EOF
	# 4 GiB = 8388608 sectors of 512 bytes; 522 cylinders of 255 x 63.
	cat >"$home/$vm.vmdk" <<-EOF
	# Disk DescriptorFile
	version=1
	encoding="UTF-8"
	CID=$(printf '%08x' $((RANDOM * 65536 + RANDOM)))
	parentCID=ffffffff
	createType="vmfs"

	# Extent description
	RW 8388608 VMFS "$vm-flat.vmdk"

	# The Disk Data Base
	#DDB

	ddb.adapterType = "pvscsi"
	ddb.geometry.cylinders = "522"
	ddb.geometry.heads = "255"
	ddb.geometry.sectors = "63"
	ddb.thinProvisioned = "1"
	ddb.virtualHWVersion = "19"
	EOF
	truncate -s 4G "$home/$vm-flat.vmdk"
	cat >"$home/vmware.log" <<-EOF
	$(date -u +%Y-%m-%dT%H:%M:%S.000Z) In(05) vmx - Log for VMware ESX pid=$$ version=8.0.2
	$(date -u +%Y-%m-%dT%H:%M:%S.000Z) In(05) vmx - DICT displayName = "$vm"
	$(date -u +%Y-%m-%dT%H:%M:%S.000Z) In(05) vmx - Disk: $vm.vmdk opened, 8388608 sectors
	EOF
}
make_home vm1
make_home vm2
# Some real data in the sparse extents: a boot area and a bit further in.
dd if=/dev/urandom of=datastore/vm1/vm1-flat.vmdk bs=1M count=4 conv=notrunc status=none
dd if=/dev/urandom of=datastore/vm1/vm1-flat.vmdk bs=1M seek=1024 count=2 conv=notrunc status=none
dd if=/dev/urandom of=datastore/vm2/vm2-flat.vmdk bs=1M count=2 conv=notrunc status=none
dd if=/dev/urandom of=datastore/vm2/vm2-flat.vmdk bs=1M seek=3072 count=3 conv=notrunc status=none
run ls -l datastore

section "2. Mount it with relocfs on $tmp/mnt"
# -f keeps relocfs in the foreground (of this script's background job) so
# that the demo knows its pid; without -f it detaches once mounted.
printf '$ %s\n' "$RELOCFS -f -o allow_other,state_dir=$tmp/state datastore mnt &"
"$RELOCFS" -f -o "allow_other,state_dir=$tmp/state" datastore mnt 2>relocfs.log &
pid=$!
for _ in $(seq 1 100); do
	is_mounted "$tmp/mnt" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if ! is_mounted "$tmp/mnt"; then
	echo "demo: relocfs did not mount; its output:" >&2
	cat relocfs.log >&2
	exit 1
fi
run findmnt "$tmp/mnt"
run ls -l state/*

section "3. The homes through the mount (first column: allocated; size column: apparent)"
run ls -lsh mnt/vm1 mnt/vm2

section "4. A VM config, read through the mount"
run head -n 8 mnt/vm1/vm1.vmx
echo
run grep -E '^(RW|createType)' mnt/vm1/vm1.vmdk

section "5. The flat extent: sparse, and the datastore's own inode number"
run stat mnt/vm1/vm1-flat.vmdk
echo
for f in mnt/vm1/vm1-flat.vmdk datastore/vm1/vm1-flat.vmdk; do
	stat -c '%-28n size %s bytes, %b blocks of %B bytes, inode %i' "$f"
done

section "6. Free space: the datastore's"
run df -hT mnt

section "7. Write through the mount, check the bytes in the datastore"
dd if=/dev/urandom of=payload bs=1M count=1 status=none
run dd if=payload of=mnt/vm1/vm1-flat.vmdk bs=1M seek=2048 conv=notrunc,fsync status=none
line="$(date -u +%Y-%m-%dT%H:%M:%S.000Z) In(05) vmx - relocfs demo: written through the mount"
printf '$ echo "%s" >> mnt/vm1/vmware.log\n' "$line"
echo "$line" >>mnt/vm1/vmware.log

want=$(sha256sum payload | cut -d' ' -f1)
via_mount=$(range_sum mnt/vm1/vm1-flat.vmdk 2048 1)
in_store=$(range_sum datastore/vm1/vm1-flat.vmdk 2048 1)
log_mount=$(sha256sum mnt/vm1/vmware.log | cut -d' ' -f1)
log_store=$(sha256sum datastore/vm1/vmware.log | cut -d' ' -f1)
printf 'sha256 of the 1 MiB written at 2 GiB into vm1-flat.vmdk:\n'
printf '  written            %s\n' "$want"
printf '  through the mount  %s\n' "$via_mount"
printf '  in the datastore   %s\n' "$in_store"
printf 'sha256 of vm1/vmware.log:\n'
printf '  through the mount  %s\n' "$log_mount"
printf '  in the datastore   %s\n' "$log_store"
if [ "$want" != "$via_mount" ] || [ "$want" != "$in_store" ] || [ "$log_mount" != "$log_store" ]; then
	echo "demo: MISMATCH: the datastore does not hold what was written" >&2
	exit 1
fi
run tail -n 1 datastore/vm1/vmware.log
echo "OK: the datastore holds exactly what was written through the mount"
run ls -lsh datastore/vm1/vm1-flat.vmdk

section "8. Unmount and clean up"
run umount mnt
status=0
wait "$pid" || status=$?
pid=
echo "relocfs exited with status $status; its log:"
sed 's/^/  /' relocfs.log
[ "$status" -eq 0 ] || exit 1
run umount datastore
cd /
rm -rf "$tmp"
tmp=
echo "removed the demo directory; done."
