#!/usr/bin/env bats
# The settings file given with -o config=FILE: every error is one line
# "relocfs: FILE:LINE: message" with exit 1 and nothing mounted; every valid
# setting is accepted and takes effect. (Never touches /etc/relocfs.)

bats_require_minimum_version 1.5.0
load lib/common

setup() {
	rfs_require_binary
	export LC_ALL=C
	T="$BATS_TEST_TMPDIR"
	SRC="$T/src"
	MNT="$T/mnt"
	STATE="$T/state"
	CONF="$T/relocfs.conf"
	mkdir -p -- "$SRC" "$MNT" "$STATE"
	_rfs_register daemon "$MNT"
	_rfs_register fuse "$MNT"
	MOUNTS_BEFORE=$(rfs_count_relocfs_mounts)
}

teardown() {
	rfs_dump_log_on_failure
	rfs_cleanup
}

# conf LINE...: write the config file, one argument per line
conf() {
	printf '%s\n' "$@" >"$CONF"
}

# run relocfs with the config (daemon mode, bounded in time)
run_conf() {
	run --separate-stderr timeout 20 "$RELOCFS" -o "state_dir=$STATE" -o "config=$CONF" "$@" "$SRC" "$MNT"
}

# assert_conf_error LINE MESSAGE: exit 1, stdout empty, stderr exactly the
# one line "relocfs: $CONF:LINE: MESSAGE..." (MESSAGE is a prefix of what
# follows the line number), nothing mounted.
assert_conf_error() {
	local line=$1 msg=$2
	local -a l=()
	[ -n "$stderr" ] && mapfile -t l <<<"$stderr"
	[ "$status" = 1 ] || fail "exit status $status, expected 1; stderr: $stderr"
	[ -z "$output" ] || fail "expected nothing on stdout, got: $output"
	[ "${#l[@]}" = 1 ] || fail "expected one line on stderr, got ${#l[@]}: $stderr"
	[[ $stderr == "relocfs: $CONF:$line: $msg"* ]] || fail "expected 'relocfs: $CONF:$line: $msg...', got: $stderr"
	assert_nothing_mounted
}

assert_nothing_mounted() {
	! rfs_is_mounted "$MNT" || fail "$MNT got mounted"
	run mountpoint -q -- "$MNT"
	[ "$status" != 0 ] || fail "mountpoint says $MNT is mounted"
	assert_equal "$(rfs_count_relocfs_mounts)" "$MOUNTS_BEFORE"
}

# assert_mounts: the last run_conf mounted and the mount serves files
assert_mounts() {
	[ "$status" = 0 ] || fail "relocfs exited $status: $stderr"
	rfs_is_mounted "$MNT" || fail "not mounted"
	echo "$BATS_TEST_NUMBER" >"$MNT/probe"
	assert_equal "$(cat -- "$SRC/probe")" "$BATS_TEST_NUMBER"
}

remount() {
	local pid
	pid=$(rfs_pids_for "$MNT")
	fusermount3 -u -- "$MNT"
	[ -z "$pid" ] || rfs_wait_gone "$pid" || fail "relocfs $pid did not exit after unmount"
}

# ---------------------------------------------------------------- file errors

@test "missing config file: exit 1, exactly 'relocfs: FILE: No such file or directory'" {
	run_conf
	assert_equal "$status" 1
	assert_equal "$stderr" "relocfs: $CONF: No such file or directory"
	assert_equal "$output" ""
	assert_nothing_mounted
}

@test "syntax error (unbalanced group): exit 1, 'FILE:LINE: syntax error'" {
	conf '# comment' 'fuse = {' '  max_threads = 4;' 'log = { level = "info"; };' '};;}'
	run_conf
	[[ $stderr == "relocfs: $CONF:"[0-9]*": syntax error"* ]] || fail "stderr: $stderr"
	local -a l=()
	mapfile -t l <<<"$stderr"
	assert_equal "${#l[@]}" 1
	assert_equal "$status" 1
	assert_nothing_mounted
}

@test "syntax error reports the line it is on" {
	conf '# line 1' '' 'fuse = {' '  max_threads = = 4;' '};'
	run_conf
	assert_conf_error 4 "syntax error"
}

@test "a file of garbage is a syntax error" {
	head -c 200 /dev/urandom | base64 >"$CONF"
	echo '= = =' >>"$CONF"
	run_conf
	assert_equal "$status" 1
	[[ $stderr == "relocfs: $CONF:"[0-9]*": syntax error"* ]] || fail "stderr: $stderr"
	assert_nothing_mounted
}

# ---------------------------------------------------------------- unknown settings

@test "unknown setting fuse.bogus: exit 1, \"FILE:LINE: unknown setting 'fuse.bogus'\"" {
	conf '# relocfs.conf' 'fuse = {' '  bogus = 1;' '};'
	run_conf
	assert_conf_error 3 "unknown setting 'fuse.bogus'"
}

@test "unknown top-level setting: \"unknown setting 'bogus'\"" {
	conf 'state_dir = "/tmp";' 'bogus = 1;'
	run_conf
	assert_conf_error 2 "unknown setting 'bogus'"
}

@test "unknown setting in the log group: \"unknown setting 'log.color'\"" {
	conf 'log = {' '  level = "info";' '  color = true;' '};'
	run_conf
	assert_conf_error 3 "unknown setting 'log.color'"
}

@test "unknown group: names it as an unknown setting" {
	conf 'journal = {' '  size = 1;' '};'
	run_conf
	assert_conf_error 1 "unknown setting 'journal'"
}

@test "a setting misspelled by case is unknown: 'fuse.Max_Threads'" {
	conf 'fuse = { Max_Threads = 4; };'
	run_conf
	assert_conf_error 1 "unknown setting 'fuse.Max_Threads'"
}

# ---------------------------------------------------------------- wrong types

@test "fuse.attr_timeout as a string: \"'fuse.attr_timeout' must be a number\"" {
	conf 'fuse = {' '  attr_timeout = "10";' '};'
	run_conf
	assert_conf_error 2 "'fuse.attr_timeout' must be a number"
}

@test "fuse.entry_timeout as a boolean: must be a number" {
	conf 'fuse = { entry_timeout = true; };'
	run_conf
	assert_conf_error 1 "'fuse.entry_timeout' must be a number"
}

@test "fuse.negative_timeout as a string: must be a number" {
	conf 'fuse = { negative_timeout = "1"; };'
	run_conf
	assert_conf_error 1 "'fuse.negative_timeout' must be a number"
}

@test "fuse.max_threads as a float: \"'fuse.max_threads' must be an integer\"" {
	conf 'fuse = {' '' '  max_threads = 1.5;' '};'
	run_conf
	assert_conf_error 3 "'fuse.max_threads' must be an integer"
}

@test "fuse.max_request_kib as a string: must be an integer" {
	conf 'fuse = { max_request_kib = "64"; };'
	run_conf
	assert_conf_error 1 "'fuse.max_request_kib' must be an integer"
}

@test "fuse.clone_fd as 1: \"'fuse.clone_fd' must be a boolean\"" {
	conf 'fuse = { clone_fd = 1; };'
	run_conf
	assert_conf_error 1 "'fuse.clone_fd' must be a boolean"
}

@test "fuse.keep_cache as \"yes\": must be a boolean" {
	conf 'fuse = { keep_cache = "yes"; };'
	run_conf
	assert_conf_error 1 "'fuse.keep_cache' must be a boolean"
}

@test "fuse.writeback_cache as 0: must be a boolean" {
	conf 'fuse = { writeback_cache = 0; };'
	run_conf
	assert_conf_error 1 "'fuse.writeback_cache' must be a boolean"
}

@test "state_dir as a number: \"'state_dir' must be a string\"" {
	conf '' 'state_dir = 5;'
	run_conf
	assert_conf_error 2 "'state_dir' must be a string"
}

@test "log.level unknown name: \"'log.level' must be one of error, warning, notice, info, debug\"" {
	conf 'log = {' '  level = "verbose";' '};'
	run_conf
	assert_conf_error 2 "'log.level' must be one of error, warning, notice, info, debug"
}

@test "log.level as a number: must be one of the level names" {
	conf 'log = { level = 3; };'
	run_conf
	assert_conf_error 1 "'log.level' must be one of error, warning, notice, info, debug"
}

# ---------------------------------------------------------------- ranges

@test "fuse.max_threads = 0 is out of range (1..1024)" {
	conf 'fuse = { max_threads = 0; };'
	run_conf
	assert_conf_error 1 "'fuse.max_threads' is out of range (1..1024)"
}

@test "fuse.max_threads = 1025 is out of range (1..1024)" {
	conf 'fuse = { max_threads = 1025; };'
	run_conf
	assert_conf_error 1 "'fuse.max_threads' is out of range (1..1024)"
}

@test "fuse.max_idle_threads = -1 is out of range (0..1024)" {
	conf 'fuse = { max_idle_threads = -1; };'
	run_conf
	assert_conf_error 1 "'fuse.max_idle_threads' is out of range (0..1024)"
}

@test "fuse.max_idle_threads = 1025 is out of range" {
	conf 'fuse = { max_idle_threads = 1025; };'
	run_conf
	assert_conf_error 1 "'fuse.max_idle_threads' is out of range (0..1024)"
}

@test "fuse.max_request_kib = 3 is out of range (4..1024)" {
	conf 'fuse = { max_request_kib = 3; };'
	run_conf
	assert_conf_error 1 "'fuse.max_request_kib' is out of range (4..1024)"
}

@test "fuse.max_request_kib = 1025 is out of range (4..1024)" {
	conf 'fuse = { max_request_kib = 1025; };'
	run_conf
	assert_conf_error 1 "'fuse.max_request_kib' is out of range (4..1024)"
}

@test "fuse.attr_timeout = -1.0 is out of range (0..31536000)" {
	conf 'fuse = { attr_timeout = -1.0; };'
	run_conf
	assert_conf_error 1 "'fuse.attr_timeout' is out of range (0..31536000)"
}

@test "fuse.entry_timeout = 31536001 is out of range" {
	conf 'fuse = { entry_timeout = 31536001; };'
	run_conf
	assert_conf_error 1 "'fuse.entry_timeout' is out of range (0..31536000)"
}

@test "fuse.negative_timeout = -0.5 is out of range" {
	conf 'fuse = { negative_timeout = -0.5; };'
	run_conf
	assert_conf_error 1 "'fuse.negative_timeout' is out of range (0..31536000)"
}

@test "a huge integer (64-bit) for max_threads is out of range, not wrapped" {
	conf 'fuse = { max_threads = 4294967297L; };'
	run_conf
	assert_conf_error 1 "'fuse.max_threads' is out of range (1..1024)"
}

@test "the first bad setting is reported, and a bad file changes nothing" {
	conf 'fuse = {' '  max_threads = 4;' '  clone_fd = 7;' '  max_request_kib = 1;' '};'
	run_conf
	assert_conf_error 3 "'fuse.clone_fd' must be a boolean"
}

@test "-o config inside a combined -o list is read" {
	conf 'fuse = { bogus = 1; };'
	run --separate-stderr timeout 20 "$RELOCFS" -o "state_dir=$STATE,config=$CONF" "$SRC" "$MNT"
	assert_conf_error 1 "unknown setting 'fuse.bogus'"
}

# ---------------------------------------------------------------- valid files

@test "an empty config file mounts" {
	rfs_require_root
	: >"$CONF"
	run_conf
	assert_mounts
}

@test "a config of comments only mounts" {
	rfs_require_root
	conf '# all defaults' '// C++ comment' '/* C comment */'
	run_conf
	assert_mounts
}

@test "a config with every setting mounts" {
	rfs_require_root
	conf "state_dir = \"$STATE\";" \
		'log = { level = "info"; };' \
		'fuse = {' \
		'  max_threads = 64;' \
		'  max_idle_threads = 8;' \
		'  clone_fd = true;' \
		'  attr_timeout = 86400.0;' \
		'  entry_timeout = 86400.0;' \
		'  negative_timeout = 1.0;' \
		'  keep_cache = true;' \
		'  writeback_cache = false;' \
		'  max_request_kib = 1024;' \
		'};'
	run_conf
	assert_mounts
}

@test "lower bounds are accepted (max_threads 1, idle 0, kib 4, timeouts 0 as integers)" {
	rfs_require_root
	conf 'fuse = {' '  max_threads = 1;' '  max_idle_threads = 0;' '  max_request_kib = 4;' \
		'  attr_timeout = 0;' '  entry_timeout = 0;' '  negative_timeout = 0;' '};'
	run_conf
	assert_mounts
	head -c 300000 /dev/urandom >"$T/data"
	cp -- "$T/data" "$MNT/big"
	cmp -- "$T/data" "$MNT/big"
	cmp -- "$T/data" "$SRC/big"
}

@test "upper bounds are accepted (max_threads 1024, idle 1024, kib 1024, timeouts 31536000)" {
	rfs_require_root
	conf 'fuse = {' '  max_threads = 1024;' '  max_idle_threads = 1024;' '  max_request_kib = 1024;' \
		'  attr_timeout = 31536000;' '  entry_timeout = 31536000.0;' '  negative_timeout = 31536000;' '};'
	run_conf
	assert_mounts
}

@test "every log level name is accepted" {
	rfs_require_root
	local lvl
	for lvl in error warning notice info debug; do
		conf "log = { level = \"$lvl\"; };"
		run_conf
		assert_mounts
		remount
	done
}

@test "settings may use ':' and ',' (libconfig alternatives)" {
	rfs_require_root
	conf 'fuse : { max_threads : 4, keep_cache : false, attr_timeout : 1.5 };'
	run_conf
	assert_mounts
}

@test "state_dir from the config is used (its lock stops a second mount)" {
	rfs_require_root
	rfs_mount "$SRC" "$T/first" -o "state_dir=$STATE"
	local before
	before=$(rfs_count_relocfs_mounts)
	MOUNTS_BEFORE=$before
	conf "state_dir = \"$STATE\";"
	run --separate-stderr timeout 20 "$RELOCFS" -o "config=$CONF" "$SRC" "$MNT"
	assert_equal "$status" 1
	[[ $stderr == "relocfs: "*"already mounted"* ]] || fail "stderr: $stderr"
	assert_nothing_mounted
}

@test "-o state_dir overrides state_dir from the config" {
	rfs_require_root
	: >"$T/notadir"
	conf "state_dir = \"$T/notadir/state\";"
	# the config's state_dir alone is unusable...
	run --separate-stderr timeout 20 "$RELOCFS" -o "config=$CONF" "$SRC" "$MNT"
	[ "$status" != 0 ] || fail "relocfs mounted with an unusable state_dir $T/notadir/state"
	assert_nothing_mounted
	# ...but -o state_dir wins over it
	run_conf
	assert_mounts
}

@test "attr/entry/negative_timeout = 0: changes made directly in SOURCE show at once" {
	rfs_require_root
	conf 'fuse = { attr_timeout = 0; entry_timeout = 0; negative_timeout = 0; };'
	run_conf
	assert_mounts
	run stat -- "$MNT/late"
	assert_failure
	echo "created behind the mount" >"$SRC/late"
	assert_equal "$(cat -- "$MNT/late")" "created behind the mount"
	echo "more" >>"$SRC/late"
	assert_equal "$(stat -c %s -- "$MNT/late")" "$(stat -c %s -- "$SRC/late")"
	chmod 0600 -- "$SRC/late"
	assert_equal "$(stat -c %a -- "$MNT/late")" 600
	rm -- "$SRC/late"
	run stat -- "$MNT/late"
	assert_failure
	assert_output --partial "No such file or directory"
}

@test "writeback_cache = true keeps data, appends, truncates and mtimes correct" {
	rfs_require_root
	conf 'fuse = { writeback_cache = true; };'
	run_conf
	assert_mounts
	mkdir -p -- "$T/ref"
	local d script
	script='head -c 1000000 /dev/urandom > "$0/rand"
		for d in "$1" "$0"; do
			cp "$0/rand" "$d/f"; printf abc >> "$d/f"; echo line >> "$d/f"
			dd if="$0/rand" of="$d/f" bs=777 seek=5 count=3 conv=notrunc status=none
			truncate -s 500000 "$d/f"; printf tail >> "$d/f"
			touch -d "2001-01-01" "$d/f"; echo x >> "$d/g"
		done'
	bash -c "$script" "$T/ref" "$MNT"
	cmp -- "$T/ref/f" "$MNT/f"
	cmp -- "$T/ref/f" "$SRC/f"
	assert_equal "$(stat -c %s -- "$MNT/f")" "$(stat -c %s -- "$T/ref/f")"
	assert_equal "$(stat -c %Y -- "$MNT/f")" 978307200
	assert_equal "$(stat -c %Y -- "$SRC/f")" 978307200
}

@test "max_threads = 1 with clone_fd = false serves parallel readers" {
	rfs_require_root
	conf 'fuse = { max_threads = 1; max_idle_threads = 1; clone_fd = false; };'
	run_conf
	assert_mounts
	head -c 2000000 /dev/urandom >"$T/data"
	cp -- "$T/data" "$MNT/f"
	local i
	local -a readers=()
	for i in 1 2 3 4 5 6; do
		timeout 30 cat -- "$MNT/f" >"$T/out$i" 3>&- &
		readers+=($!)
	done
	for i in "${readers[@]}"; do wait "$i"; done
	for i in 1 2 3 4 5 6; do cmp -- "$T/data" "$T/out$i"; done
}

@test "asynchronous requests are held to three quarters of fuse.max_threads (at most 64), so that a deep queue leaves threads free" {
	rfs_require_root
	local t
	for t in 8 64 1024 1; do
		conf "fuse = { max_threads = $t; };"
		rfs_mount "$SRC" "$MNT" -d -o "config=$CONF,state_dir=$STATE"
		case $t in
		8) grep -q "max_background=6$" "$RFS_LOG" && grep -q "congestion_threshold=4$" "$RFS_LOG" ;;
		64) grep -q "max_background=48$" "$RFS_LOG" && grep -q "congestion_threshold=36$" "$RFS_LOG" ;;
		1024) grep -q "max_background=64$" "$RFS_LOG" && grep -q "congestion_threshold=48$" "$RFS_LOG" ;;
		1) grep -q "max_background=1$" "$RFS_LOG" && grep -q "congestion_threshold=1$" "$RFS_LOG" ;;
		esac || fail "max_threads $t: $(grep -E 'max_background|congestion' "$RFS_LOG")"
		rfs_umount "$MNT"
		rfs_wait_gone "$RFS_PID"
		: >"$RFS_LOG"
	done
}
