#!/usr/bin/env bash
# csrc/test/repro/run.sh: builds and runs the reproductions of core bugs
# found while writing the C tests (each file's header describes its bug).
# A repro exits 0 when the bug does not show, 77 when it cannot run in
# this build (reported as SKIPPED; a failure in the plain x86-64 build);
# anything else means the bug shows.
#   csrc/test/repro/run.sh            all of them
#   csrc/test/repro/run.sh repro_x    one
#   SAN=tsan csrc/test/repro/run.sh   with ThreadSanitizer (asan: ASan +
#                                     UBSan; default: no sanitizer)
set -u
cd "$(dirname "$0")/../../.." || exit 2
CC=${CC:-cc}
case ${SAN:-none} in
  asan) SANF="-fsanitize=address,undefined" ;;
  tsan)
    SANF="-fsanitize=thread"
    export TSAN_OPTIONS=${TSAN_OPTIONS:-atexit_sleep_ms=0}
    ;;
  *) SANF="" ;;
esac
out=build-ctest-repro
mkdir -p "$out"
files=()
if [ $# -gt 0 ]; then
  for r in "$@"; do files+=("csrc/test/repro/${r%.c}.c"); done
else
  files=(csrc/test/repro/repro_*.c)
fi
# Every core source goes into every repro: one that does not compile
# fails the build, and the run.
core=(csrc/core/*.c)
shown=0
skipped=0
for f in "${files[@]}"; do
  name=$(basename "${f%.c}")
  # shellcheck disable=SC2086
  if ! $CC -std=c11 -D_GNU_SOURCE -pthread -g -O1 $SANF "${core[@]}" "$f" \
       -o "$out/$name"; then
    echo "$name: build failed"
    shown=1
    continue
  fi
  echo "== $name"
  timeout 60 "$out/$name"
  rc=$?
  if [ $rc -eq 0 ]; then echo "-> $name: not reproduced"
  elif [ $rc -eq 77 ]; then  # the repro cannot run in this build
    echo "-> $name: SKIPPED (it printed why above)"
    skipped=$((skipped + 1))
    # Only a sanitizer build or another architecture justifies a skip:
    # the plain build on x86-64 (what make ctest runs) must run them all.
    if [ "${SAN:-none}" = none ] && [ "$(uname -m)" = x86_64 ]; then
      shown=1
    fi
  else echo "-> $name: REPRODUCED (exit $rc)"; shown=1; fi
done
echo "repro: ${#files[@]} reproductions, $skipped skipped"
exit $shown
