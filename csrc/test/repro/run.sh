#!/usr/bin/env bash
# csrc/test/repro/run.sh: builds and runs the reproductions of core bugs
# found by the C tests (each file's header describes its bug). A repro
# exits 0 when the bug does not show; anything else means it does.
#   csrc/test/repro/run.sh            all of them
#   csrc/test/repro/run.sh repro_x    one
#   SAN=tsan csrc/test/repro/run.sh   with ThreadSanitizer (default: none;
#                                     asan for ASan+UBSan)
set -u
cd "$(dirname "$0")/../../.." || exit 2
CC=${CC:-cc}
case ${SAN:-none} in
  asan) SANF="-fsanitize=address,undefined" ;;
  tsan) SANF="-fsanitize=thread"; export TSAN_OPTIONS=${TSAN_OPTIONS:-atexit_sleep_ms=0} ;;
  *) SANF="" ;;
esac
out=build-ctest-repro
mkdir -p "$out"
if [ $# -gt 0 ]; then files=(); for r in "$@"; do files+=("csrc/test/repro/${r%.c}.c"); done
else files=(csrc/test/repro/repro_*.c); fi
core=()
for f in csrc/core/*.c; do
  [ "$(basename "$f")" = cmap.c ] && ! $CC -std=c11 -D_GNU_SOURCE -fsyntax-only "$f" 2>/dev/null && continue
  core+=("$f")
done
shown=0
for f in "${files[@]}"; do
  name=$(basename "${f%.c}")
  # shellcheck disable=SC2086
  $CC -std=c11 -D_GNU_SOURCE -pthread -g -O1 $SANF "${core[@]}" "$f" \
    -o "$out/$name" || { echo "$name: build failed"; shown=1; continue; }
  echo "== $name"
  timeout 60 "$out/$name"
  rc=$?
  if [ $rc -eq 0 ]; then echo "-> $name: not reproduced"
  else echo "-> $name: REPRODUCED (exit $rc)"; shown=1; fi
done
exit $shown
