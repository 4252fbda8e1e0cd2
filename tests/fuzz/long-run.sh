#!/usr/bin/env bash
# A long libFuzzer run: tests/fuzz/long-run.sh TARGET|all SECONDS [BUILD_DIR]
#
# Runs each target (all: every one in targets.txt, one after the other) for SECONDS under
# nice -n 19 in one process, on a persistent corpus in $FLEETGA_FUZZ_CORPUS/<target>
# (default build/fuzz/corpus/<target>) seeded from tests/fuzz/seeds/<target>, with the
# target's max_len from targets.txt. libFuzzer's final stats (-print_final_stats=1) go to
# <corpus>/../<target>.log; the last line printed per target is its executions and result.
# A crash leaves crash-*/timeout-*/oom-* in the artifact directory
# ($FLEETGA_FUZZ_ARTIFACTS, default build/fuzz/artifacts/).
# Build first: cmake --build build/fuzz (see HACKING.md, "Running the tests").
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${1:?usage: long-run.sh TARGET|all SECONDS [BUILD_DIR]}"
seconds="${2:?usage: long-run.sh TARGET|all SECONDS [BUILD_DIR]}"
build="${3:-$repo/build/fuzz}"
corpus_root="${FLEETGA_FUZZ_CORPUS:-$build/corpus}"
artifacts="${FLEETGA_FUZZ_ARTIFACTS:-$build/artifacts}"
mkdir -p "$corpus_root" "$artifacts"

status=0
while read -r name _short max_len; do
  [[ "$name" == fuzz_* ]] || continue
  [[ "$target" == all || "$target" == "$name" ]] || continue
  bin="$build/tests/fuzz/$name"
  [[ -x "$bin" ]] || { echo "$name: $bin not built" >&2; status=1; continue; }
  mkdir -p "$corpus_root/$name"
  log="$corpus_root/$name.log"
  start=$SECONDS
  nice -n 19 "$bin" -max_total_time="$seconds" -rss_limit_mb=4096 -max_len="$max_len" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$corpus_root/$name" "$here/seeds/$name" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  echo "$name: ${execs:-?} executions in $((SECONDS - start))s, exit $rc (log: $log)"
  [[ $rc -eq 0 ]] || status=1
done <"$here/targets.txt"
exit $status
