#!/usr/bin/env bash
# fuzz/run.sh: builds the libFuzzer targets (clang, with ASan + UBSan) into
# build-fuzz/ and runs each for a fixed number of executions, printing
#   fuzz: <target> <execs> execs, <n> crashes
# and exiting non-zero if any target crashed (a crash, a sanitizer
# report, a leak, a timeout or running out of memory).
#
#   fuzz/run.sh                     both targets, FUZZ_RUNS (20000) each
#   fuzz/run.sh fuzz_decode         one target
#   FUZZ_RUNS=100000 fuzz/run.sh    more executions
#   FUZZ_TIME=180 fuzz/run.sh       run each for 180 s instead
#
# Inputs the fuzzer finds interesting go to build-fuzz/corpus/<target>/
# (the seeds in fuzz/corpus/ are only read); crash inputs go to
# build-fuzz/artifacts/. Replay one with: build-fuzz/<target> <file>
set -u
cd "$(dirname "$0")/.." || exit 2

CC=${FUZZ_CC:-clang}
RUNS=${FUZZ_RUNS:-20000}
LUA_INC=${LUA_INC:-/usr/include/lua5.4}
OUT=build-fuzz
FLAGS="-std=c11 -D_GNU_SOURCE -pthread -g -O1 -fno-omit-frame-pointer
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
  -I$LUA_INC -Wall -Wextra"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

targets=(fuzz_decode fuzz_roundtrip)
[ $# -gt 0 ] && targets=("$@")

# Sources: every file of the core and of the binding, always. One that
# does not compile fails the build of every target, and the run.
src=(csrc/core/*.c csrc/lua/*.c)
n_core=0
n_lua=0
for f in csrc/core/*.c; do [ -e "$f" ] && n_core=$((n_core + 1)); done
for f in csrc/lua/*.c; do [ -e "$f" ] && n_lua=$((n_lua + 1)); done
# A guard against a filter coming back: all of them, and nothing else.
if [ "${#src[@]}" -ne $((n_core + n_lua)) ] || [ "$n_core" -eq 0 ] ||
   [ "$n_lua" -eq 0 ]; then
  echo "fuzz: ${#src[@]} sources, but $n_core core and $n_lua binding" \
    "files exist" >&2
  exit 2
fi
echo "fuzz: building with all $n_core core and $n_lua binding sources"
mkdir -p "$OUT"

mkdir -p "$OUT/artifacts"

# Crash inputs saved for target $1 so far.
count_artifacts() {
  local n=0 f
  for f in "$OUT/artifacts/$1-"*; do [ -e "$f" ] && n=$((n + 1)); done
  echo $n
}

status=0
for t in "${targets[@]}"; do
  kind=${t#fuzz_}
  echo "== building $t"
  # shellcheck disable=SC2086
  if ! $CC $FLAGS "${src[@]}" "fuzz/$t.c" -o "$OUT/$t" -llua5.4 -ldl; then
    echo "fuzz: $t: build failed" >&2
    status=1
    continue
  fi
  mkdir -p "$OUT/corpus/$t"
  if [ -n "${FUZZ_TIME:-}" ]; then limit=(-max_total_time="$FUZZ_TIME")
  else limit=(-runs="$RUNS"); fi
  before=$(count_artifacts "$t")
  log=$OUT/$t.log
  "$OUT/$t" "${limit[@]}" -max_len=4096 -timeout=25 -rss_limit_mb=2048 \
    -detect_leaks=1 -print_final_stats=1 \
    -artifact_prefix="$OUT/artifacts/$t-" \
    "$OUT/corpus/$t" "fuzz/corpus/$kind" >"$log" 2>&1
  rc=$?
  after=$(count_artifacts "$t")
  crashes=$((after - before))
  [ $rc -ne 0 ] && [ $crashes -eq 0 ] && crashes=1
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' \
          "$log" | tail -1)
  [ -z "$execs" ] && execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 |
                             tr -d '#')
  # run by count, a run that stops short (no crash reported) still fails
  if [ -z "${FUZZ_TIME:-}" ] && [ "${execs:-0}" -lt "$RUNS" ] &&
     [ $crashes -eq 0 ]; then
    echo "fuzz: $t stopped after ${execs:-0} of $RUNS execs" >&2
    crashes=1
  fi
  echo "fuzz: $t ${execs:-0} execs, $crashes crashes"
  if [ $crashes -ne 0 ]; then
    status=1
    grep -E 'ERROR|SUMMARY|assertion failed|mismatch|Test unit written' \
      "$log" | head -8 | sed 's/^/  /'
    echo "  (full log: $log)"
  fi
done
exit $status
