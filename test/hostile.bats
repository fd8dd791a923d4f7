#!/usr/bin/env bats
# Hostile input at the boundaries: names of NAME_MAX bytes and one more,
# relocctl paths and datastores spelled with "..", through symbolic links,
# into the mount; symbolic links in a home that point out of the tree, a
# home that is a symbolic link, special files and hard links in a home; and
# the control socket fed what relocctl never sends (oversized, binary,
# unterminated requests, idle connections, a non-root peer). Each is either
# refused with a clear error and changes nothing, or works as it should;
# the daemon answers relocctl status afterwards.
# (test/relocation_refusals.bats has the plain refusals of relocctl.)

bats_require_minimum_version 1.5.0

load lib/common
load lib/reloc

setup_file() { reloc_setup_file; }
teardown_file() { reloc_teardown_file; }

setup() {
	reloc_setup
	reloc_make_home vm1 1 4
	reloc_make_home vm2 1 4
	reloc_mount
	CTL_SOCK=$(sed -n 's/.*control \(\/[^ ]*\.sock\)).*/\1/p' "$RFS_LOG" | tail -n 1)
	[ -S "$CTL_SOCK" ] || fail "no control socket found in the log: $(cat -- "$RFS_LOG")"
	POKE=$RELOC_TOOLS/ctlpoke.py
}

teardown() {
	# release a flood of idle connections, if a test left one
	[ -n "${FLOOD_HOLD:-}" ] && touch -- "$FLOOD_HOLD"
	reloc_teardown
}

# name LEN [CHAR]: a name of LEN bytes of CHAR (default x)
name() {
	local c=${2:-x}
	head -c "$1" /dev/zero | tr '\0' "$c"
}

# tree DIR: rfs_tree without the sizes of directories (they differ between
# tmpfs and ext4)
tree() {
	rfs_tree "$1" | sed -E 's/^(.* d [0-7]+ [^ ]+ n=[0-9]+) s=[0-9]+ /\1 s=- /'
}

# special_files DIR: name, type, device numbers and link count of everything
# below DIR that is neither a regular file nor a directory
special_files() {
	( cd -- "$1" && find . ! -type f ! -type d -print0 | xargs -0r stat -c '%n %F %t:%T %h' ) | LC_ALL=C sort
}

# link_groups DIR: the names below DIR that share an inode, one group a line
link_groups() {
	( cd -- "$1" && find . ! -type d -links +1 -printf '%i %p\n' ) | LC_ALL=C sort |
		awk '{ g[$1] = g[$1] " " $2 } END { for (i in g) print g[i] }' | LC_ALL=C sort
}

# ctl_error PATTERN ctlpoke-send-args...: the daemon answers the raw request
# with "error<TAB>..." matching the extended regex PATTERN (the reply is shown
# with its tab and newline escaped: "error\t...\n")
ctl_error() {
	local pat=$1
	shift
	run "$RFS_PY" "$POKE" "$CTL_SOCK" send "$@"
	[ "$status" = 0 ] || { fail "ctlpoke send $*: exit $status: $output"; return 1; }
	[[ $output == 'reply: error\t'* ]] ||
		{ fail "ctlpoke send $*: the daemon did not answer with an error: $output"; return 1; }
	grep -Eq -- "$pat" <<<"$output" ||
		{ fail "ctlpoke send $*: the error does not match /$pat/: $output"; return 1; }
}

# status_answers: relocctl status from root answers, with a valid document
status_answers() {
	reloc_assert_valid_status
}

# ---------------------------------------------------------------- names

@test "names of 255 bytes (a home, dirs, files, UTF-8) made through the mount arrive intact after a relocation" {
	local H D F U before
	H=$(name 255 h)
	D=$(name 255 d)
	F=$(name 255 f)
	U="$(printf 'ä%.0s' $(seq 127))x"
	[ "$(printf %s "$U" | wc -c)" = 255 ] || fail "the UTF-8 name is not 255 bytes"
	mkdir "$MNT/$H"
	mkdir "$MNT/$H/$D"
	echo "deep file" >"$MNT/$H/$D/$F"
	head -c 300000 /dev/urandom >"$MNT/$H/$F"
	echo "utf-8" >"$MNT/$H/$U"
	ln -s "$D/$F" "$MNT/$H/$(name 255 l)"
	ln "$MNT/$H/$F" "$MNT/$H/$D/$(name 255 k)"
	setfattr -n user.long -v "$H" "$MNT/$H/$D/$F"
	before=$(tree "$MNT/$H")
	reloc_status
	[ "$(rq datastore "$H")" = "$(readlink -f "$SRC")" ] || fail "the 255-byte home is not listed on the source: $RELOC_JSON"

	reloc_migrate "$H" "$DST" --wait
	reloc_assert_home_on "$H" "$DST"
	assert_not_exist "$SRC/$H"
	assert_equal "$(tree "$DST/$H")" "$before"
	assert_equal "$(tree "$MNT/$H")" "$before"
	reloc_assert_no_journal
}

@test "names of 256 bytes fail with ENAMETOOLONG as on the native fs, also in a relocating home; 255 bytes work there" {
	REF=$BATS_TEST_TMPDIR/ref
	mkdir -p "$REF/vm1"
	echo x >"$REF/vm1/f"
	echo x >"$MNT/vm1/f"
	local script
	script='cd vm1 || exit 9
n=$(head -c 256 /dev/zero | tr "\0" y)
touch "$n"; echo "touch $?"
mkdir "$n"; echo "mkdir $?"
ln -s f "$n"; echo "symlink $?"
ln f "$n"; echo "link $?"
mv f "$n"; echo "rename $?"
mkfifo "$n"; echo "mkfifo $?"
cat "$n" 2>&1 | sed "s/^cat: y*:/cat: NAME:/"; echo "open $?"
ls f'
	rfs_both "$script"
	reloc_migrate vm1 "$DST" --manual-cutover --rate 1
	reloc_wait_phase "$RELOC_ID" copy 30
	rfs_both "$script"
	local L
	L=$(name 255 z)
	echo "made during the relocation" >"$MNT/vm1/$L"
	mkdir "$MNT/vm1/$L.d" 2>/dev/null && fail "a 257-byte directory name was accepted"
	mkdir "$MNT/vm1/sub/$L"
	reloc_wait_phase "$RELOC_ID" ready 60
	run rctl cutover "$MNT/vm1"
	assert_success
	reloc_wait_phase "$RELOC_ID" done 60
	reloc_assert_home_on vm1 "$DST"
	assert_equal "$(cat "$DST/vm1/$L")" "made during the relocation"
	assert_dir_exist "$DST/vm1/sub/$L"
	run find "$DST/vm1" "$SRC" -name 'yyyy*'
	assert_output ''
}

# ---------------------------------------------------------------- relocctl paths

@test "relocctl PATH with .. that escapes the mount is refused, nothing changed" {
	reloc_snapshot
	reloc_refused 1 "is not inside a relocfs mount" migrate "$MNT/../src/vm1" --to "$DST"
	reloc_refused 1 "is not inside a relocfs mount" migrate "$MNT/vm1/../../src/vm1" --to "$DST"
	reloc_refused 1 "is not inside a relocfs mount" migrate "$MNT/vm1/sub/../../.." --to "$DST"
	reloc_refused 1 "is not a home" migrate "$MNT/vm1/.." --to "$DST"
	reloc_refused 1 "is not a home" abort "$MNT/vm1/sub/../.."
	pushd "$MNT/vm1/sub" >/dev/null
	reloc_refused 1 "is not inside a relocfs mount" migrate ../../../src/vm1 --to "$DST"
	reloc_refused 1 "is not a home" migrate ../.. --to "$DST"
	popd >/dev/null
	reloc_assert_unchanged
}

@test "relocctl PATH with .. inside the mount names the home it resolves to" {
	reloc_migrate "vm2/../vm1" "$DST" --wait
	reloc_status
	assert_equal "$(rq get "$RELOC_ID" home)" vm1
	reloc_assert_home_on vm1 "$DST"
	reloc_assert_home_on vm2 "$SRC"
	assert_dir_exist "$SRC/vm2"
	assert_not_exist "$DST/vm2"
}

@test "DATASTORE with .. is canonicalized; one that leads into the mount, a home or the current datastore is refused" {
	local T=$BATS_TEST_TMPDIR
	mkdir "$DST/sub"
	reloc_snapshot
	reloc_refused 1 "No such file or directory" migrate "$MNT/vm1" --to "$DST/nosuch/.."
	reloc_refused 1 "is inside the mount" migrate "$MNT/vm1" --to "$SRC/../mnt/vm2"
	reloc_refused 1 "is inside the mount" migrate "$MNT/vm1" --to "$DST/../../../../../../../../../../..$MNT"
	reloc_refused 1 "is inside the home" migrate "$MNT/vm1" --to "$SRC/vm2/../vm1/sub"
	reloc_refused 1 "already on datastore" migrate "$MNT/vm1" --to "$SRC/vm2/.."
	reloc_refused 1 "already on datastore" migrate "$MNT/vm1" --to "$T/../$(basename "$T")/src"
	reloc_assert_unchanged

	reloc_migrate vm1 "$DST/sub/.." --wait
	reloc_status
	assert_equal "$(rq get "$RELOC_ID" to)" "$(readlink -f "$DST")"
	reloc_assert_home_on vm1 "$DST"
	assert_dir_exist "$DST/vm1"
	assert_not_exist "$DST/sub/vm1"
	# relative, from a directory of the destination
	pushd "$DST/sub" >/dev/null
	RCTL_TIMEOUT=120 run --separate-stderr rctl migrate "$MNT/vm2" --to .. --wait
	popd >/dev/null
	assert_success
	reloc_assert_home_on vm2 "$DST"
	assert_dir_exist "$DST/vm2"
	# and back to the source, spelled with ..: a valid destination
	reloc_migrate vm1 "$SRC/../src" --wait
	reloc_assert_home_on vm1 "$SRC"
	assert_not_exist "$DST/vm1"
	reloc_assert_no_journal
}

@test "DATASTORE as a symbolic link: resolved, the home moves to its target; links into the mount, loops, dangling links refused" {
	local T=$BATS_TEST_TMPDIR
	ln -s "$DST" "$T/dstlink"
	ln -s "$MNT/vm2" "$T/mntlink"
	ln -s "$T/loop2" "$T/loop1"
	ln -s "$T/loop1" "$T/loop2"
	ln -s "$T/nowhere" "$T/dangling"
	reloc_snapshot
	reloc_refused 1 "is inside the mount" migrate "$MNT/vm1" --to "$T/mntlink"
	reloc_refused 1 "Too many levels of symbolic links" migrate "$MNT/vm1" --to "$T/loop1"
	reloc_refused 1 "No such file or directory" migrate "$MNT/vm1" --to "$T/dangling"
	reloc_assert_unchanged

	reloc_migrate vm1 "$T/dstlink" --wait
	reloc_status
	assert_equal "$(rq get "$RELOC_ID" to)" "$(readlink -f "$DST")"
	reloc_assert_home_on vm1 "$DST"
	[ -L "$T/dstlink" ] || fail "the DATASTORE symlink was replaced"
	assert_equal "$(readlink "$T/dstlink")" "$DST"
	assert_dir_exist "$DST/vm1"
	assert_not_exist "$SRC/vm1"
}

# ---------------------------------------------------------------- symlinks in and as homes

@test "symbolic links in a home that point out of the tree are relocated as links, never followed" {
	local H=$MNT/vm1 t passwd_before target_before l
	echo "on the destination, not part of any home" >"$DST/target.txt"
	touch -d '2001-02-03 04:05:06' "$DST/target.txt"
	target_before=$(stat -c '%s %Y %i' "$DST/target.txt"; sha256sum <"$DST/target.txt")
	passwd_before=$(stat -c '%s %Y %i' /etc/passwd; sha256sum </etc/passwd)
	ln -s /etc/passwd "$H/etc-passwd"
	ln -s /etc "$H/etc-dir"
	ln -s "$DST/target.txt" "$H/on-destination"
	ln -s "$DST/vm1/evil" "$H/into-the-future-home"
	ln -s "$DST" "$H/sub/destination-root"
	ln -s ../vm2/vm2.vmx "$H/sibling-home"
	ln -s ../../../../../../../../../../.. "$H/sub/far-up"
	ln -s "$(name 4000 /)etc/shadow" "$H/long-target"
	ln -s nowhere "$H/dangling"
	local -A text=()
	for l in etc-passwd etc-dir on-destination into-the-future-home sub/destination-root \
		sibling-home sub/far-up long-target dangling; do
		text[$l]=$(readlink "$H/$l")
	done
	local before
	before=$(tree "$MNT/vm1")

	reloc_migrate vm1 "$DST" --wait
	reloc_assert_home_on vm1 "$DST"
	for l in "${!text[@]}"; do
		[ -L "$DST/vm1/$l" ] || fail "$DST/vm1/$l is not a symbolic link: $(ls -ld "$DST/vm1/$l")"
		assert_equal "$(readlink "$DST/vm1/$l")" "${text[$l]}"
		assert_equal "$(readlink "$MNT/vm1/$l")" "${text[$l]}"
	done
	assert_equal "$(tree "$DST/vm1")" "$before"
	assert_not_exist "$DST/vm1/evil"
	assert_equal "$(stat -c '%s %Y %i' "$DST/target.txt"; sha256sum <"$DST/target.txt")" "$target_before"
	assert_equal "$(stat -c '%s %Y %i' /etc/passwd; sha256sum </etc/passwd)" "$passwd_before"
	run ls -A "$DST"
	assert_output "$(printf 'target.txt\nvm1')"
}

@test "a top-level home that is a symbolic link is not a home: refused by the daemon, never followed" {
	ln -s vm1 "$MNT/vmlink"
	ln -s /etc "$MNT/vmabs"
	ln -s "$DST" "$MNT/vmdst"
	[ -L "$SRC/vmlink" ] && [ -L "$SRC/vmabs" ] || fail "the links were not made on the source"
	reloc_snapshot
	for h in vmlink vmabs vmdst; do
		[ "$(rq datastore "$h")" = missing ] || fail "status lists the symlink $h as a home: $RELOC_JSON"
	done
	# relocctl resolves PATH first: /etc and DST are not in the mount
	reloc_refused 1 "is not inside a relocfs mount" migrate "$MNT/vmabs" --to "$DST"
	reloc_refused 1 "is not inside a relocfs mount" migrate "$MNT/vmdst" --to "$BATS_TEST_TMPDIR"
	# the daemon, asked for them by name, does not follow them
	local h
	for h in vmlink vmabs vmdst; do
		ctl_error "vm.* is not a home \(not a directory\)" --text "migrate\t$h\t$DST\t0\t0\t0\t0\t0\n"
	done
	reloc_assert_unchanged
	assert_not_exist "$DST/etc"
	assert_not_exist "$DST/vmabs"

	# through relocctl, a link to a home names that home
	reloc_migrate vmlink "$DST" --wait
	reloc_status
	assert_equal "$(rq get "$RELOC_ID" home)" vm1
	reloc_assert_home_on vm1 "$DST"
	[ -L "$SRC/vmlink" ] || fail "the link home was replaced"
	assert_equal "$(readlink "$SRC/vmlink")" vm1
	assert_equal "$(cat "$MNT/vmlink/sub/file")" "a file in a subdirectory"
}

@test "a home with a FIFO, a socket, device nodes and hard links is relocated intact, none of them opened" {
	local H=$MNT/vm1
	mkfifo -m 0640 "$H/fifo"
	"$RFS_PY" -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()' "$H/sock"
	mknod -m 0666 "$H/zero" c 1 5
	mknod -m 0600 "$H/sub/blk" b 7 250
	ln "$H/vm1.nvram" "$H/nvram-link"
	ln "$H/vm1.nvram" "$H/sub/nvram-link2"
	ln "$H/fifo" "$H/sub/fifo-link"
	ln "$H/zero" "$H/sub/zero-link"
	ln -s ../vm1.vmx "$H/sub/vmx-symlink"
	ln -P "$H/sub/vmx-symlink" "$H/vmx-symlink-link"
	[ -p "$SRC/vm1/fifo" ] && [ -S "$SRC/vm1/sock" ] && [ -c "$SRC/vm1/zero" ] && [ -b "$SRC/vm1/sub/blk" ] ||
		fail "the special files were not made on the source: $(ls -lR "$SRC/vm1")"
	local before devs links
	before=$(tree "$MNT/vm1")
	devs=$(special_files "$MNT/vm1")
	links=$(link_groups "$MNT/vm1")

	reloc_migrate_bg special vm1 "$DST"
	reloc_migrate_bg_wait special 60
	[ "$status" = 0 ] || fail "relocctl migrate --wait: exit $status: $stderr"
	reloc_assert_home_on vm1 "$DST"
	assert_not_exist "$SRC/vm1"
	assert_equal "$(tree "$DST/vm1")" "$before"
	assert_equal "$(tree "$MNT/vm1")" "$before"
	assert_equal "$(special_files "$DST/vm1")" "$devs"
	assert_equal "$(link_groups "$DST/vm1")" "$links"
	assert_equal "$(link_groups "$MNT/vm1")" "$links"
	[ -p "$DST/vm1/sub/fifo-link" ] && [ "$(stat -c %i "$DST/vm1/fifo")" = "$(stat -c %i "$DST/vm1/sub/fifo-link")" ] ||
		fail "the FIFO's hard link was not kept: $(ls -liR "$DST/vm1")"
	# the FIFO still works through the mount
	timeout 10 cat "$MNT/vm1/fifo" >"$BATS_TEST_TMPDIR/fifo.out" &
	local reader=$!
	timeout 10 sh -c 'echo through the fifo >"$1"' _ "$MNT/vm1/sub/fifo-link"
	wait "$reader"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/fifo.out")" "through the fifo"
	reloc_assert_no_journal
}

# ---------------------------------------------------------------- the control socket

@test "control socket: requests longer than the limit get 'request too long'; status answers afterwards" {
	reloc_snapshot
	ctl_error "request too long" --repeat A 4097
	ctl_error "request too long" --repeat A 4097 --shut
	ctl_error "request too long" --repeat 'status\t' 1000
	ctl_error "request too long" --repeat B 1048576
	# at the limit: a migrate with a datastore path of 4000 bytes
	ctl_error "DATASTORE '/a+.*File name too long|DATASTORE '/a+" \
		--text "migrate\tvm1\t/$(name 4000 a)\t0\t0\t0\t0\t0\n"
	status_answers
	reloc_assert_unchanged
}

@test "control socket: binary garbage, empty and malformed requests get an error; status answers afterwards" {
	reloc_snapshot
	ctl_error "malformed request: a NUL or control character" --hex "fffe0001020304057f80ff0a"
	ctl_error "unknown or malformed|malformed" --hex "000a"
	ctl_error "unknown or malformed|malformed" --text '\n'
	ctl_error "unknown or malformed|malformed" --text '\t\t\t\n'
	ctl_error "unknown or malformed" --text 'STATUS\tjson\n'
	ctl_error "unknown or malformed" --text 'status\tyaml\n'
	ctl_error "too many fields" --text "$(printf 'status%.0s\\t' $(seq 20))x\n"
	ctl_error "malformed" --text 'progress\t-1\n'
	ctl_error "malformed" --text 'progress\t99999999999999999999999\n'
	head -c 8192 /dev/urandom >"$BATS_TEST_TMPDIR/garbage"
	ctl_error "." --hex "$(od -An -v -tx1 "$BATS_TEST_TMPDIR/garbage" | tr -d ' \n')"
	status_answers
	# a NUL inside a request is garbage too: the daemon must not act on
	# what precedes it as if the line ended there
	ctl_error "malformed" --text 'status\tjson\x00\tjunk\n'
	ctl_error "malformed" --text 'abort\tvm1\x00\n'
	status_answers
	reloc_assert_unchanged
}

@test "control socket: raw migrate requests with hostile fields are refused and change nothing" {
	reloc_snapshot
	local d=$DST h
	for h in "" . .. "vm1/../vm2" "../vm1" "vm1/sub" "/vm1" "$(name 256)"; do
		ctl_error "is not a home|No such file|File name too long" --text "migrate\t$h\t$d\t0\t0\t0\t0\t0\n"
	done
	ctl_error "malformed migrate request" --text "migrate\tvm1\trelative/dst\t0\t0\t0\t0\t0\n"
	ctl_error "malformed migrate request" --text "migrate\tvm1\t\t0\t0\t0\t0\t0\n"
	ctl_error "malformed migrate request" --text "migrate\tvm1\t$d\t-1\t0\t0\t0\t0\n"
	ctl_error "malformed migrate request" --text "migrate\tvm1\t$d\t18446744073709551616\t0\t0\t0\t0\n"
	ctl_error "malformed migrate request" --text "migrate\tvm1\t$d\t0\t60001\t0\t0\t0\n"
	ctl_error "malformed migrate request" --text "migrate\tvm1\t$d\t0\t0\t2\t0\t0\n"
	ctl_error "malformed migrate request" --text "migrate\tvm1\t$d\t0\t0\t0\t0\t0x1\n"
	ctl_error "unknown or malformed" --text "migrate\tvm1\t$d\n"
	ctl_error "is inside the mount" --text "migrate\tvm1\t$MNT/vm2/..\t0\t0\t0\t0\t0\n"
	ctl_error "is not a home|is not relocating" --text 'abort\t..\n'
	ctl_error "is not a home|is not relocating" --text 'cutover\tvm1/../vm2\n'
	status_answers
	reloc_assert_unchanged
}

@test "control socket: an unterminated request gets an error; others are served meanwhile" {
	reloc_snapshot
	ctl_error "malformed request" --text 'status\tjson' --shut
	ctl_error "malformed request" --text 'status\tjson\nstatus\tjson\n'
	# held open without a newline: the daemon drops it after its timeout
	"$RFS_PY" "$POKE" "$CTL_SOCK" send --text 'status\tjson' </dev/null \
		>"$BATS_TEST_TMPDIR/held.out" 2>&1 3>&- &
	local held=$!
	_rfs_register pid "$held"
	RCTL_TIMEOUT=20 status_answers
	wait "$held" || fail "the held request: $(cat "$BATS_TEST_TMPDIR/held.out")"
	_rfs_unregister pid "$held"
	run cat "$BATS_TEST_TMPDIR/held.out"
	assert_output 'reply: error\ttimed out waiting for the request\n'
	reloc_assert_unchanged
}

@test "control socket: a flood of idle connections does not keep relocctl status from answering" {
	reloc_snapshot
	FLOOD_HOLD=$BATS_TEST_TMPDIR/flood.hold
	"$RFS_PY" "$POKE" "$CTL_SOCK" flood 64 "$FLOOD_HOLD" </dev/null \
		>"$BATS_TEST_TMPDIR/flood.out" 2>&1 3>&- &
	local flood=$!
	_rfs_register pid "$flood"
	local n=0
	while ! grep -q '^opened' "$BATS_TEST_TMPDIR/flood.out" 2>/dev/null; do
		n=$((n + 1))
		[ "$n" -lt 200 ] || fail "the flood did not start: $(cat "$BATS_TEST_TMPDIR/flood.out")"
		sleep 0.05
	done
	local opened
	opened=$(sed -n 's/^opened //p' "$BATS_TEST_TMPDIR/flood.out")
	[ "$opened" -ge 8 ] || fail "only $opened idle connections could be opened"
	# Each idle connection is dropped after the daemon's 5 s request
	# timeout; relocctl status must not queue behind all of them (with 16
	# and more that is minutes). 20 s leaves room for a few.
	local rc=0
	RELOC_JSON=$(RCTL_TIMEOUT=20 rctl status "$MNT" --json 2>"$BATS_TEST_TMPDIR/status.err") || rc=$?
	touch -- "$FLOOD_HOLD"
	wait "$flood" || true
	_rfs_unregister pid "$flood"
	[ "$rc" = 0 ] ||
		fail "relocctl status did not answer within 20 s while $opened idle connections were open (exit $rc: $(cat "$BATS_TEST_TMPDIR/status.err"))"
	[ "$(reloc_stable_json)" = "$RELOC_SNAP_JSON" ] || fail "status changed: $RELOC_JSON"
	status_answers
	reloc_assert_unchanged
}

@test "control socket: a non-root peer is refused by the daemon itself, even past the socket's mode; nothing changes" {
	rfs_require_cmd setpriv
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=+dac_override \
		--ambient-caps=+dac_override true 2>/dev/null || skip "setpriv cannot grant ambient capabilities here"
	reloc_migrate vm1 "$DST" --manual-cutover
	reloc_wait_phase "$RELOC_ID" ready 60
	local id=$RELOC_ID req
	rfs_allow_traverse "$MNT"
	# a peer of uid 65534 (nobody) that may open the 0600 socket
	for req in 'abort\tvm1\n' 'cutover\tvm1\n' 'status\tjson\n' \
		"migrate\tvm2\t$DST\t0\t0\t0\t0\t0\n" 'progress\t1\n'; do
		run setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=+dac_override \
			--ambient-caps=+dac_override "$RFS_PY" "$POKE" "$CTL_SOCK" send --text "$req"
		assert_success
		assert_output 'reply: error\tpermission denied: only root may control relocfs\n'
	done
	grep -q 'refused a request from uid 65534' "$RFS_LOG" || fail "the refusal is not logged: $(cat "$RFS_LOG")"
	# relocctl run as nobody: the socket's mode stops it
	run --separate-stderr setpriv --reuid=65534 --regid=65534 --clear-groups "$RELOCCTL" abort "$MNT/vm1"
	[ "$status" = 1 ] || fail "relocctl abort as nobody: exit $status: $stderr"
	[ "${#stderr_lines[@]}" = 1 ] && [[ ${stderr_lines[0]} == "relocctl: cannot reach the relocfs daemon of "*"Permission denied" ]] ||
		fail "relocctl abort as nobody: $stderr"
	# the relocation went on, vm2 did not move
	reloc_status
	assert_equal "$(rq phase "$id")" ready
	[ "$(rq latest vm2)" = missing ] || fail "vm2 relocates: $RELOC_JSON"
	assert_not_exist "$DST/vm2"
	run rctl abort "$MNT/vm1"
	assert_success
	reloc_wait_phase "$id" aborted 60
	reloc_assert_home_on vm1 "$SRC"
	assert_not_exist "$DST/vm1"
}

@test "lookups of 100000 missing names at the mount root by a user allocate no home: homes_tracked and the daemon's RSS stay put" {
	rfs_allow_traverse "$MNT"
	ls -- "$MNT" >/dev/null	# the real homes are known
	reloc_status
	local before rss0 rss1
	before=$(rq top homes_tracked)
	[[ $before =~ ^[0-9]+$ ]] || fail "no homes_tracked in the status: $RELOC_JSON"
	rss0=$(awk '/^VmRSS:/ { print $2 }' "/proc/$RFS_PID/status")
	# each a distinct name, each ENOENT, as on the native fs
	run rfs_as_user "$RFS_PY" -c '
import errno, os, sys
mnt = sys.argv[1]
for i in range(100000):
    try:
        os.lstat("%s/missing-%06d" % (mnt, i))
        sys.exit("missing-%06d exists" % i)
    except FileNotFoundError:
        pass
' "$MNT"
	assert_success
	reloc_status
	assert_equal "$(rq top homes_tracked)" "$before"
	rss1=$(awk '/^VmRSS:/ { print $2 }' "/proc/$RFS_PID/status")
	# a home each would be ~40 MiB; allow the kernel's and malloc's noise
	[ $((rss1 - rss0)) -lt 8192 ] || fail "RSS grew from $rss0 to $rss1 KiB"
	# the real homes are still found, and a new one gets a home
	run stat -c %F -- "$MNT/vm1" "$MNT/vm2"
	assert_success
	mkdir -- "$MNT/vm3"
	reloc_status
	assert_equal "$(rq top homes_tracked)" "$((before + 1))"
	[ "$(rq datastore vm3)" != missing ] || fail "vm3 not listed: $RELOC_JSON"
}
