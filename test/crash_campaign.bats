#!/usr/bin/env bats
# Crash campaign: relocfs killed (SIGKILL, by RELOCFS_FAILPOINT) at every step
# of a relocation, of its rollback and of the recovery at mount, with a crash
# writer fsync'ing writes into the home's disk through the mount all along;
# then mounted again. Before the first convergence round the remount rolls the
# relocation back, from it on it rolls it forward; an abort rolls back once it
# is persisted. Every acknowledged write survives, the home is on exactly one
# datastore, nothing is left in the state dir. See test/lib/campaign.bash.
#
# 40 kills at 26 distinct failpoints (every one src/failpoint.c lists).

bats_require_minimum_version 1.5.0

load lib/common
load lib/reloc
load lib/campaign

setup_file() { reloc_setup_file; }
teardown_file() { reloc_teardown_file; }
setup() { campaign_setup; }
teardown() { campaign_teardown; }

# ---------------------------------------------------------------- prepare and copy: rolled back

@test "kill at prepare-tree: rolled back" { campaign prepare-tree back run; }
@test "kill at copy-start: rolled back" { campaign copy-start back run; }
@test "kill at the 1st copied chunk: rolled back" { campaign copy-chunk@1 back run --rate 8; }
@test "kill at the 3rd copied chunk: rolled back" { campaign copy-chunk@3 back run --rate 8; }
@test "kill at the 6th copied chunk: rolled back" { campaign copy-chunk@6 back run --rate 8; }
@test "kill at copy-done: rolled back" { campaign copy-done back run --rate 8; }

# ---------------------------------------------------------------- converge and ready: rolled forward

@test "kill at round-sealed of the 1st round: rolled forward" { campaign round-sealed forward run --manual-cutover --pause-budget 1; }
@test "kill at round-applied of the 1st round: rolled forward" { campaign round-applied forward run --manual-cutover --pause-budget 1; }
@test "kill at round-dropped of the 1st round: rolled forward" { campaign round-dropped forward run --manual-cutover --pause-budget 1; }
@test "kill at round-applied of the 3rd round: rolled forward" { campaign round-applied@3 forward run --manual-cutover --pause-budget 1; }
@test "kill at the 1st pass of ready: rolled forward" { campaign ready forward run --manual-cutover; }
@test "kill at the 4th pass of ready: rolled forward" { campaign ready@4 forward run --manual-cutover; }
@test "kill at verify-done (--verify): rolled forward" { campaign verify-done forward run --verify; }

# ---------------------------------------------------------------- cutover and cleanup: rolled forward

@test "kill at cutover-state (manual cutover): rolled forward" { campaign cutover-state forward cutover; }
@test "kill at cutover-applied (manual cutover): rolled forward" { campaign cutover-applied forward cutover; }
@test "kill at flip-committed (manual cutover): rolled forward" { campaign flip-committed forward cutover; }
@test "kill at cutover-flipped: rolled forward" { campaign cutover-flipped forward run; }
@test "kill at cutover-resumed: rolled forward" { campaign cutover-resumed forward run; }
@test "kill at flush-done: rolled forward" { campaign flush-done forward run; }
@test "kill at cutover-journal-dropped: rolled forward" { campaign cutover-journal-dropped forward run; }
@test "kill at cleanup-state: rolled forward" { campaign cleanup-state forward run; }
@test "kill at cleanup-journal: rolled forward, the source copy removed" { campaign cleanup-journal forward run; }
@test "kill at cleanup-source: rolled forward" { campaign cleanup-source forward run; }
@test "kill at flush-done with --keep-source: rolled forward, the source kept" { campaign flush-done keep run --keep-source; }
@test "kill at cleanup-journal with --keep-source: rolled forward, the source kept" { campaign cleanup-journal keep run --keep-source; }

# ---------------------------------------------------------------- abort during the copy: rolled back

@test "abort during the copy, kill at rollback-round (B partly written back): rolled back" { campaign rollback-round back abort-copy; }
@test "abort during the copy, kill at rollback-quiesced: rolled back" { campaign rollback-quiesced back abort-copy; }
@test "abort during the copy, kill at rollback-restored: rolled back" { campaign rollback-restored back abort-copy; }
@test "abort during the copy, kill at rollback-state: rolled back" { campaign rollback-state back abort-copy; }
@test "abort during the copy, kill at rollback-removed: rolled back" { campaign rollback-removed back abort-copy; }

# ---------------------------------------------------------------- abort in ready: forward until the abort is persisted

@test "abort in ready, kill at rollback-round (B partly written back): rolled forward" { campaign rollback-round forward abort-ready; }
@test "abort in ready with --keep-source, kill at rollback-round: rolled forward, the partly written back source not kept" { campaign rollback-round forward abort-ready --keep-source; }
@test "abort in ready, kill at rollback-quiesced: rolled forward" { campaign rollback-quiesced forward abort-ready; }
@test "abort in ready, kill at rollback-restored: rolled forward" { campaign rollback-restored forward abort-ready; }
@test "abort in ready, kill at rollback-state: rolled back" { campaign rollback-state back abort-ready; }
@test "abort in ready, kill at rollback-removed: rolled back" { campaign rollback-removed back abort-ready; }

# ---------------------------------------------------------------- a kill during the recovery of a kill

@test "kill in the copy, then at recover-replayed of the rollback: rolled back" { campaign copy-chunk@2 back run --rate 8 -- recover-replayed; }
@test "kill in ready, then at recover-replayed of the roll-forward: rolled forward" { campaign ready@2 forward run --manual-cutover -- recover-replayed; }
@test "kill in ready, then at recover-committed: rolled forward" { campaign ready@2 forward run --manual-cutover -- recover-committed; }
@test "kill after the flip, then at recover-replayed onto the destination: rolled forward" { campaign cutover-flipped forward run -- recover-replayed; }
