#!/usr/bin/env bats
# relocctl refusals: every request the contract refuses exits 1 (usage errors
# 2) with one stderr line "relocctl: ...", prints nothing on stdout, and
# changes nothing: no DATASTORE/vm1 appears, the status document, the source
# tree (with mtimes), the destination and the state dir stay as they were.

bats_require_minimum_version 1.5.0

load lib/common
load lib/reloc

setup_file() {
	reloc_setup_file
}

teardown_file() {
	reloc_teardown_file
}

setup() {
	reloc_setup
	reloc_make_home vm1 8 32
	reloc_make_home vm2 1 4
	reloc_mount
	reloc_snapshot
}

teardown() {
	reloc_teardown
}

# refused PATTERN relocctl-args...: exit 1, one line matching PATTERN, nothing changed
refused() {
	reloc_refused 1 "$@"
	reloc_assert_unchanged
}

# usage_error BAD relocctl-args...: exit 2, one line naming BAD or "usage:",
# nothing changed
usage_error() {
	local bad=$1
	shift
	run --separate-stderr rctl "$@"
	local msg
	msg=$(printf 'relocctl %s\nexit %s (expected 2)\nstdout: %s\nstderr: %s' "$*" "$status" "$output" "$stderr")
	[ "$status" = 2 ] || { fail "$msg"; return 1; }
	[ -z "$output" ] || { fail "stdout not empty: $msg"; return 1; }
	[ "${#stderr_lines[@]}" -ge 1 ] || { fail "no stderr: $msg"; return 1; }
	[[ ${stderr_lines[0]} == "relocctl: "* ]] || { fail "first stderr line does not start with 'relocctl: ': $msg"; return 1; }
	if [[ ${stderr_lines[0]} != *"relocctl: usage:"* ]] && [[ -z $bad || ${stderr_lines[0]} != *"$bad"* ]]; then
		fail "first stderr line neither says 'relocctl: usage:' nor names '$bad': $msg"
		return 1
	fi
	reloc_assert_unchanged
}

# ---------------------------------------------------------------- the home

@test "refused: PATH not inside a relocfs mount" {
	refused "is not inside a relocfs mount" migrate "$SRC/vm1" --to "$DST"
	refused "is not inside a relocfs mount" migrate "$BATS_TEST_TMPDIR" --to "$DST"
}

@test "refused: PATH is the mount root" {
	refused "is not a home" migrate "$MNT" --to "$DST"
	refused "is not a home" migrate "$MNT/" --to "$DST"
}

@test "refused: PATH is deeper than a home" {
	refused "is not a home" migrate "$MNT/vm1/sub" --to "$DST"
	refused "is not a home" migrate "$MNT/vm1/vm1.vmx" --to "$DST"
}

@test "refused: the home does not exist" {
	refused "No such file or directory" migrate "$MNT/nosuch" --to "$DST"
}

# ---------------------------------------------------------------- the datastore

@test "refused: DATASTORE does not exist" {
	refused "No such file or directory" migrate "$MNT/vm1" --to "$DST/nosuch"
}

@test "refused: DATASTORE is not a directory" {
	echo "a file" >"$DST/plainfile"
	reloc_snapshot
	refused "is not a directory" migrate "$MNT/vm1" --to "$DST/plainfile"
}

@test "refused: DATASTORE is not writable (read-only mount)" {
	local ro=$BATS_TEST_TMPDIR/ro
	mkdir -p "$ro"
	mount -t tmpfs -o ro,size=64m tmpfs "$ro"
	_rfs_register mount "$ro"
	refused "is not writable" migrate "$MNT/vm1" --to "$ro"
	assert_not_exist "$ro/vm1"
}

@test "refused: DATASTORE inside the home itself" {
	refused "is inside" migrate "$MNT/vm1" --to "$SRC/vm1/sub"
	refused "is inside" migrate "$MNT/vm1" --to "$MNT/vm1/sub"
}

@test "refused: DATASTORE inside the mount" {
	refused "is inside" migrate "$MNT/vm1" --to "$MNT/vm2"
	refused "is inside" migrate "$MNT/vm1" --to "$MNT"
}

@test "refused: DATASTORE is the datastore the home is on now" {
	refused "already on datastore" migrate "$MNT/vm1" --to "$SRC"
	refused "already on datastore" migrate "$MNT/vm1" --to "$SRC/"
	ln -s "$SRC" "$BATS_TEST_TMPDIR/src-link"
	refused "already on datastore" migrate "$MNT/vm1" --to "$BATS_TEST_TMPDIR/src-link"
}

@test "refused: DATASTORE is a bind mount of the datastore the home is on now" {
	local b=$BATS_TEST_TMPDIR/src-bind
	mkdir -p "$b"
	mount --bind "$SRC" "$b"
	_rfs_register mount "$b"
	reloc_snapshot
	# either wording is right: it is the same datastore, and it holds vm1
	refused "already on datastore|already has an entry named" migrate "$MNT/vm1" --to "$b"
}

@test "refused: DATASTORE already has a directory of the home's name" {
	mkdir "$DST/vm1"
	echo keep >"$DST/vm1/keep"
	reloc_snapshot
	refused "already has an entry named" migrate "$MNT/vm1" --to "$DST"
	[ "$(cat -- "$DST/vm1/keep")" = keep ]
}

@test "refused: DATASTORE already has a file or a dangling symlink of the home's name" {
	echo x >"$DST/vm1"
	ln -s nowhere "$DST/vm2"
	reloc_snapshot
	refused "already has an entry named" migrate "$MNT/vm1" --to "$DST"
	refused "already has an entry named" migrate "$MNT/vm2" --to "$DST"
}

@test "refused: not enough free space on DATASTORE" {
	local small=$BATS_TEST_TMPDIR/small
	rfs_tmpfs "$small" 1m
	reloc_snapshot
	refused "not enough free space" migrate "$MNT/vm1" --to "$small"
	assert_not_exist "$small/vm1"
}

# ---------------------------------------------------------------- state

@test "refused: the home is already relocating (to the same or another datastore)" {
	local DST2=$BATS_TEST_TMPDIR/dst2
	rfs_tmpfs "$DST2" 256m
	reloc_migrate vm1 "$DST" --manual-cutover --rate 1
	local id=$RELOC_ID
	reloc_status
	local ids_before homes_before
	ids_before=$(rq ids)
	homes_before=$(rq homes)

	reloc_refused 1 "is already relocating" migrate "$MNT/vm1" --to "$DST2"
	# to the same DATASTORE its copy in progress is there too: either wording
	reloc_refused 1 "is already relocating|already has an entry named" migrate "$MNT/vm1" --to "$DST"
	assert_not_exist "$DST2/vm1"
	reloc_status
	[ "$(rq ids)" = "$ids_before" ] || fail "relocations changed: $RELOC_JSON"
	[ "$(rq homes)" = "$homes_before" ] || fail "placement changed: $RELOC_JSON"
	local ph
	ph=$(rq phase "$id")
	[[ " $RELOC_TERMINAL " != *" $ph "* ]] || fail "the running relocation ended ($ph): $RELOC_JSON"

	run --separate-stderr rctl abort "$MNT/vm1"
	[ "$status" = 0 ] || fail "relocctl abort: exit $status: $stderr"
	reloc_wait_phase "$id" aborted 60
	assert_not_exist "$DST/vm1"
}

@test "refused: cutover and abort of a home that is not relocating" {
	refused "is not relocating" cutover "$MNT/vm1"
	refused "is not relocating" abort "$MNT/vm1"
}

@test "refused: cutover and abort after the relocation is done" {
	reloc_migrate vm2 "$DST" --wait
	reloc_snapshot
	refused "is not relocating" cutover "$MNT/vm2"
	refused "is not relocating" abort "$MNT/vm2"
	assert_dir_exist "$DST/vm2"
}

@test "refused: relocctl for an unprivileged user" {
	rfs_allow_traverse "$MNT"
	rfs_as_user test -x "$RELOCCTL" || skip "the test user cannot run $RELOCCTL"
	run --separate-stderr rfs_as_user "$RELOCCTL" migrate "$MNT/vm1" --to "$DST"
	[ "$status" != 0 ] || fail "an unprivileged migrate succeeded: $output"
	[[ ${stderr_lines[0]:-} == "relocctl: "* ]] || fail "stderr: $stderr"
	reloc_assert_unchanged
}

# ---------------------------------------------------------------- usage

@test "usage: migrate without --to" {
	usage_error "--to" migrate "$MNT/vm1"
	usage_error "--to" migrate "$MNT/vm1" --wait
}

@test "usage: --to without a value, migrate without PATH" {
	usage_error "--to" migrate "$MNT/vm1" --to
	usage_error "PATH" migrate --to "$DST"
	usage_error "PATH" migrate
}

@test "usage: unknown flag" {
	usage_error "--frobnicate" migrate "$MNT/vm1" --to "$DST" --frobnicate
	usage_error "-z" migrate "$MNT/vm1" --to "$DST" -z
}

@test "usage: bad numbers for --rate and --pause-budget" {
	usage_error "abc" migrate "$MNT/vm1" --to "$DST" --rate abc
	usage_error "12x" migrate "$MNT/vm1" --to "$DST" --rate 12x
	usage_error "-5" migrate "$MNT/vm1" --to "$DST" --rate -5
	usage_error "--rate" migrate "$MNT/vm1" --to "$DST" --rate
	usage_error "soon" migrate "$MNT/vm1" --to "$DST" --pause-budget soon
	usage_error "99999999999999999999999" migrate "$MNT/vm1" --to "$DST" --pause-budget 99999999999999999999999
}

@test "usage: unknown command; cutover and abort without PATH" {
	usage_error "frobnicate" frobnicate "$MNT/vm1"
	usage_error "PATH" cutover
	usage_error "PATH" abort
	usage_error "$MNT/vm2" cutover "$MNT/vm1" "$MNT/vm2"
}
