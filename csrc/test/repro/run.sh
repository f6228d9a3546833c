#!/usr/bin/env bash
# csrc/test/repro/run.sh: builds and runs the reproductions of core bugs
# found while writing the C tests (each file's header describes its bug).
# A repro exits 0 when the bug does not show; anything else means it does.
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
core=()
for f in csrc/core/*.c; do  # cmap.c may be mid-edit: skip it if broken
  if [ "$(basename "$f")" = cmap.c ] &&
     ! $CC -std=c11 -D_GNU_SOURCE -fsyntax-only "$f" 2>/dev/null; then
    continue
  fi
  core+=("$f")
done
shown=0
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
  else echo "-> $name: REPRODUCED (exit $rc)"; shown=1; fi
done
exit $shown
