#!/usr/bin/env bash
# csrc/test/run.sh: builds the C tests of the core and of the workers'
# heap (csrc/test/test_*.c) with ASan+UBSan into build-ctest-asan/ and
# with TSan into build-ctest-tsan/, runs them all, and prints
#   ctest: N passed, M failed
# Exits non-zero if a build or any test fails.
#
#   csrc/test/run.sh                 everything
#   csrc/test/run.sh asan            one sanitizer (asan or tsan)
#   csrc/test/run.sh asan test_chan  one test file
#   CC=clang csrc/test/run.sh        another compiler
#
# Each test runs in a child process of its own, killed after
# CONC_TEST_TIMEOUT seconds (default here 20) if it hangs.
set -u
cd "$(dirname "$0")/../.." || exit 2

CC=${CC:-cc}
JOBS=$(nproc)
WARN="-Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes"
BASE="-std=c11 -D_GNU_SOURCE -pthread $WARN -g -O1 -fno-omit-frame-pointer"
export CONC_TEST_TIMEOUT=${CONC_TEST_TIMEOUT:-20}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
TSAN_DEFAULT="halt_on_error=1 second_deadlock_stack=1 atexit_sleep_ms=0"
export TSAN_OPTIONS=${TSAN_OPTIONS:-$TSAN_DEFAULT}

sans=(asan tsan)
if [ $# -ge 1 ]; then sans=("$1"); shift; fi
only=("$@")

san_flags() {
  case $1 in
    asan) echo "-fsanitize=address,undefined -fno-sanitize-recover=all" ;;
    tsan) echo "-fsanitize=thread" ;;
    *) echo "run.sh: unknown sanitizer '$1' (asan or tsan)" >&2; exit 2 ;;
  esac
}

# The core's sources: every csrc/core/*.c, always. One that does not
# compile fails the build (and the run): a test must never pass over a
# source it left out. check_sources below counts them again.
core_src=(csrc/core/*.c)
# Tests named test_lua_* test the binding: they are linked with every
# csrc/lua/*.c and liblua as well (a Lua state of their own, e.g. with an
# allocator that fails on purpose).
lua_src=(csrc/lua/*.c)
LUA_INC=${LUA_INC:-/usr/include/lua5.4}

if [ ${#only[@]} -gt 0 ]; then
  tests=()
  for t in "${only[@]}"; do tests+=("csrc/test/${t%.c}.c"); done
else
  tests=(csrc/test/test_*.c)
fi

# Runs up to $JOBS of the queued commands at once; 1 if any failed.
run_parallel() {
  local failed=0 pids=() cmd
  for cmd in "$@"; do
    bash -c "$cmd" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$JOBS" ]; then
      wait "${pids[0]}" || failed=1
      pids=("${pids[@]:1}")
    fi
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  return $failed
}

# Fails unless the objects of $1 are exactly one per csrc/core/*.c (counted
# afresh with ls, apart from core_src): a guard against a filter that
# would quietly build the tests without a source.
check_sources() {
  local want=0 got=0 f
  for f in csrc/core/*.c; do [ -e "$f" ] && want=$((want + 1)); done
  for f in "$1"/obj/*.o; do [ -e "$f" ] && got=$((got + 1)); done
  echo "ctest: $got of $want core sources built into $1"
  [ "$want" -gt 0 ] && [ "$got" -eq "$want" ]
}

# Builds the core once per sanitizer, then links each test against it.
build() {
  local san=$1 dir=build-ctest-$1 flags cmds=() objs=() f o t
  flags="$BASE $(san_flags "$san")"
  rm -rf "$dir/obj"  # no object of an earlier build may count as built
  mkdir -p "$dir/obj"
  for f in "${core_src[@]}"; do
    o="$dir/obj/$(basename "${f%.c}").o"
    objs+=("$o")
    cmds+=("$CC $flags -c $f -o $o")
  done
  run_parallel "${cmds[@]}" || return 1
  check_sources "$dir" || return 1
  local lobjs=()
  cmds=()
  rm -rf "$dir/lobj"
  mkdir -p "$dir/lobj"
  for f in "${lua_src[@]}"; do
    o="$dir/lobj/$(basename "${f%.c}").o"
    lobjs+=("$o")
    cmds+=("$CC $flags -fPIC -I$LUA_INC -c $f -o $o")
  done
  run_parallel "${cmds[@]}" || return 1
  cmds=()
  for t in "${tests[@]}"; do
    case $(basename "$t") in
      test_lua_*)
        cmds+=("$CC $flags -I$LUA_INC ${objs[*]} ${lobjs[*]} $t -o \
                $dir/$(basename "${t%.c}") -llua5.4 -ldl -lm") ;;
      *) cmds+=("$CC $flags ${objs[*]} $t -o $dir/$(basename "${t%.c}")") ;;
    esac
  done
  run_parallel "${cmds[@]}"
}

total_pass=0
total_fail=0
status=0
for san in "${sans[@]}"; do
  echo "== $san: building ${#tests[@]} test files"
  if ! build "$san"; then
    echo "ctest: $san build failed" >&2
    status=1
    total_fail=$((total_fail + 1))
    continue
  fi
  for t in "${tests[@]}"; do
    bin=build-ctest-$san/$(basename "${t%.c}")
    log=$bin.log
    "$bin" >"$log" 2>&1
    rc=$?
    grep -v '^ok ' "$log" | sed "s/^/[$san] /"
    line=$(grep -E '^test_[a-z_]+: [0-9]+ passed, [0-9]+ failed$' "$log" |
           tail -1)
    p=$(echo "$line" | sed -nE 's/.*: ([0-9]+) passed.*/\1/p')
    f=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed$/\1/p')
    if [ -z "$p" ]; then  # crashed before its summary
      p=0
      f=1
      echo "[$san] $bin: no summary line (exit $rc)" >&2
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    [ "$rc" -ne 0 ] && status=1
  done
done
echo "ctest: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ] && [ "$status" -eq 0 ]
