#!/usr/bin/env bats
# relocfs used from an fstab line of type fuse.relocfs: mount(8) runs
# /sbin/mount.fuse3, which runs "relocfs SOURCE MOUNTPOINT -o OPTIONS"
# through /bin/sh. The tests use a private fstab (mount -T FILE), never
# /etc/fstab.
#
# Finding the binary: mount(8) runs its helpers with PATH removed from the
# environment (checked on util-linux 2.38), so /bin/sh falls back to its
# built-in path (/usr/local/sbin:/usr/local/bin:/usr/sbin:...), and a
# build/ directory put on PATH is never seen. setup_file therefore links
# /usr/local/sbin/relocfs -> build/relocfs for the duration of this file and
# removes the link in teardown_file; the tests skip if another relocfs is
# installed there.

bats_require_minimum_version 1.5.0
load lib/common

HELPER_LINK=/usr/local/sbin/relocfs

setup_file() {
	[ "$(id -u)" = 0 ] || return 0
	[ -x "$RELOCFS" ] || return 0
	FSTAB_SKIP=""
	if [ -L "$HELPER_LINK" ] && [ "$(readlink -f -- "$HELPER_LINK")" = "$(readlink -f -- "$RELOCFS")" ]; then
		: # already ours (e.g. left by an interrupted run): reuse, remove at the end
		_rfs_register rmfile "$HELPER_LINK"
	elif [ -e "$HELPER_LINK" ] || [ -L "$HELPER_LINK" ]; then
		FSTAB_SKIP="$HELPER_LINK exists and is not build/relocfs (an installed relocfs?)"
	elif [ ! -d "${HELPER_LINK%/*}" ]; then
		FSTAB_SKIP="${HELPER_LINK%/*} does not exist"
	else
		ln -s -- "$RELOCFS" "$HELPER_LINK"
		_rfs_register rmfile "$HELPER_LINK"
	fi
	# also the way the brief asks for: build/ reachable through PATH
	mkdir -p -- "$BATS_FILE_TMPDIR/bin"
	ln -sf -- "$RELOCFS" "$BATS_FILE_TMPDIR/bin/relocfs"
	export PATH="$BATS_FILE_TMPDIR/bin:$PATH" FSTAB_SKIP
}

teardown_file() {
	rfs_cleanup
}

setup() {
	rfs_require_root
	rfs_require_binary
	rfs_require_cmd mount.fuse3
	[ -z "${FSTAB_SKIP:-}" ] || skip "$FSTAB_SKIP"
	export LC_ALL=C
	T="$BATS_TEST_TMPDIR"
	SRC="$T/src"
	MNT="$T/mnt"
	STATE="$T/state"
	FSTAB="$T/fstab"
	mkdir -p -- "$SRC" "$MNT" "$STATE"
	echo "from source" >"$SRC/f"
	_rfs_register daemon "$MNT"
	_rfs_register fuse "$MNT"
	MOUNTS_BEFORE=$(rfs_count_relocfs_mounts)
}

teardown() {
	rfs_cleanup
}

# fstab_line SOURCE MOUNTPOINT OPTIONS
fstab_line() {
	printf '%s %s fuse.relocfs %s 0 0\n' "$1" "$2" "$3" >>"$FSTAB"
}

assert_serves() { # MNT SRC
	assert_equal "$(cat -- "$1/f")" "from source"
	echo "through $BATS_TEST_NUMBER" >"$1/g"
	assert_equal "$(cat -- "$2/g")" "through $BATS_TEST_NUMBER"
}

@test "mount MOUNTPOINT with an fstab line of type fuse.relocfs mounts SOURCE" {
	fstab_line "$SRC" "$MNT" "defaults,allow_other,state_dir=$STATE"
	run timeout 30 mount -T "$FSTAB" "$MNT"
	assert_success
	rfs_is_mounted "$MNT" || fail "not mounted"
	assert_equal "$(rfs_fstype "$MNT")" fuse.relocfs
	[[ ,$(rfs_mount_opts "$MNT"), == *,allow_other,* ]] || fail "allow_other lost: $(rfs_mount_opts "$MNT")"
	[[ ,$(rfs_mount_opts "$MNT"), == *,default_permissions,* ]] || fail "no default_permissions: $(rfs_mount_opts "$MNT")"
	assert_serves "$MNT" "$SRC"
}

@test "mount SOURCE (by the fstab's first field) mounts it too" {
	fstab_line "$SRC" "$MNT" "defaults,allow_other,state_dir=$STATE"
	run timeout 30 mount -T "$FSTAB" "$SRC"
	assert_success
	rfs_is_mounted "$MNT" || fail "not mounted"
	assert_serves "$MNT" "$SRC"
}

@test "umount of an fstab mount unmounts it and the daemon exits" {
	fstab_line "$SRC" "$MNT" "defaults,allow_other,state_dir=$STATE"
	timeout 30 mount -T "$FSTAB" "$MNT"
	local pid
	pid=$(rfs_pids_for "$MNT")
	[ -n "$pid" ] || fail "no relocfs process serves $MNT"
	umount -- "$MNT"
	rfs_wait_gone "$pid" || fail "relocfs $pid still running after umount"
	! rfs_is_mounted "$MNT"
	assert_equal "$(rfs_count_relocfs_mounts)" "$MOUNTS_BEFORE"
}

@test "the state_dir option of the fstab line reaches relocfs (its lock is held)" {
	fstab_line "$SRC" "$MNT" "defaults,allow_other,state_dir=$STATE"
	timeout 30 mount -T "$FSTAB" "$MNT"
	mkdir -p -- "$T/mnt2"
	_rfs_register daemon "$T/mnt2"
	_rfs_register fuse "$T/mnt2"
	run --separate-stderr timeout 20 "$RELOCFS" -o "state_dir=$STATE" "$SRC" "$T/mnt2"
	assert_equal "$status" 1
	[[ $stderr == *"already mounted"* ]] || fail "stderr: $stderr"
	! rfs_is_mounted "$T/mnt2"
}

@test "mount -a mounts every relocfs line except noauto ones" {
	mkdir -p -- "$T/srcB" "$T/mntB" "$T/srcC" "$T/mntC"
	echo "from source" >"$T/srcB/f"
	_rfs_register daemon "$T/mntB"
	_rfs_register fuse "$T/mntB"
	_rfs_register daemon "$T/mntC"
	_rfs_register fuse "$T/mntC"
	fstab_line "$SRC" "$MNT" "defaults,allow_other,state_dir=$STATE"
	fstab_line "$T/srcB" "$T/mntB" "defaults,state_dir=$STATE"
	fstab_line "$T/srcC" "$T/mntC" "noauto,state_dir=$STATE"
	run timeout 60 mount -a -T "$FSTAB" -t fuse.relocfs
	assert_success
	assert_serves "$MNT" "$SRC"
	assert_serves "$T/mntB" "$T/srcB"
	! rfs_is_mounted "$T/mntC" || fail "the noauto line got mounted"
}

@test "nofail, _netdev and x-systemd options in the fstab line are accepted" {
	fstab_line "$SRC" "$MNT" "defaults,nofail,_netdev,x-systemd.requires=local-fs.target,allow_other,state_dir=$STATE"
	run timeout 30 mount -T "$FSTAB" "$MNT"
	assert_success
	assert_serves "$MNT" "$SRC"
}

@test "ro in the fstab line gives a read-only mount" {
	fstab_line "$SRC" "$MNT" "ro,allow_other,state_dir=$STATE"
	run timeout 30 mount -T "$FSTAB" "$MNT"
	assert_success
	assert_equal "$(cat -- "$MNT/f")" "from source"
	run touch -- "$MNT/new"
	assert_failure
	assert_output --partial "Read-only file system"
}

@test "config= in the fstab line is read: a bad config fails the mount, nothing mounted" {
	printf 'fuse = {\n  bogus = 1;\n};\n' >"$T/bad.conf"
	fstab_line "$SRC" "$MNT" "defaults,config=$T/bad.conf,state_dir=$STATE"
	run timeout 30 mount -T "$FSTAB" "$MNT"
	assert_failure
	assert_output --partial "unknown setting 'fuse.bogus'"
	! rfs_is_mounted "$MNT" || fail "mounted despite a bad config"
	assert_equal "$(rfs_count_relocfs_mounts)" "$MOUNTS_BEFORE"
}

@test "config= in the fstab line with a good config mounts" {
	printf 'fuse = { max_threads = 4; attr_timeout = 1.0; };\nlog = { level = "notice"; };\n' >"$T/good.conf"
	fstab_line "$SRC" "$MNT" "defaults,allow_other,config=$T/good.conf,state_dir=$STATE"
	run timeout 30 mount -T "$FSTAB" "$MNT"
	assert_success
	assert_serves "$MNT" "$SRC"
}

@test "an fstab line whose SOURCE is missing fails and mounts nothing" {
	fstab_line "$T/nope" "$MNT" "defaults,state_dir=$STATE"
	run timeout 30 mount -T "$FSTAB" "$MNT"
	assert_failure
	assert_output --partial "No such file or directory"
	! rfs_is_mounted "$MNT" || fail "mounted a missing SOURCE"
	assert_equal "$(rfs_count_relocfs_mounts)" "$MOUNTS_BEFORE"
}

@test "the old 'fuse' type with PROGRAM#SOURCE works with the absolute path of relocfs" {
	printf '%s#%s %s fuse allow_other,state_dir=%s 0 0\n' "$RELOCFS" "$SRC" "$MNT" "$STATE" >"$FSTAB"
	run timeout 30 mount -T "$FSTAB" "$MNT"
	assert_success
	assert_serves "$MNT" "$SRC"
}
