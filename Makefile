# conc: build, test, benchmark.
#   make            build build/conc/core.so (the C module conc.core)
#   make test       the linters, then the whole test suite (busted, spec/)
#   make lint       luacheck, clang-format check, cppcheck, clang-tidy
#   make bench      run the benchmarks against their Go twins (bench/),
#                   then chart them (bench/chart: docs/bench.tsv, .svg)
#   make demo       the chapter's worker pool, in Lua
#   make lib        build/libconc.a and build/libconc.so, for a C host
#   make lib-check  their exported symbols are exactly the public API
#   make host-example  the C host of examples/host/, built and checked
#   make rock-check the binary and source rocks, installed into throwaway
#                   trees and run from outside the source tree

SHELL    := /bin/bash
LUA      ?= lua5.4
LUA_INC  ?= /usr/include/lua5.4
BUSTED   ?= /usr/bin/busted
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
            -Wstrict-prototypes
# CONC_BUILD_MODULE: conc's API stays hidden in the module (conc.h).
ALL_CFLAGS = -std=c11 -fPIC -fvisibility=hidden -D_GNU_SOURCE -pthread \
             -DCONC_BUILD_MODULE $(WARN) -I$(LUA_INC) $(CFLAGS)
SO_LDFLAGS = -shared -pthread -Wl,-z,nodelete

CORE_SRC = $(wildcard csrc/core/*.c)
LUA_SRC  = $(wildcard csrc/lua/*.c)
HEADERS  = csrc/conc.h csrc/conc_lua.h $(wildcard csrc/core/*.h csrc/lua/*.h)
MODULE   = build/conc/core.so

SAN_CFLAGS = -O1 -g -fno-omit-frame-pointer
ASAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all
LIBASAN   := $(shell $(CC) -print-file-name=libasan.so)
# Sanitizer runs: the module built into build-<kind>/, busted pointed at it.
SAN_RUN = CONC_SANITIZER=$(1) CONC_CPATH=$(CURDIR)/build-$(1)/?.so $(2) \
          $(LUA) $(BUSTED) \
          -o utfTerminal --cpath=./build-$(1)/?.so

.PHONY: all test specs demo bench bench-quick clean asan tsan valgrind procs-check \
        helgrind stress stress-short ctest fuzz-smoke lint luacheck \
        format-check cppcheck tidy tidy-files lib lib-check host-example \
        rock-check specs-procs

all: $(MODULE)

# Linked beside it, then renamed: a process that has the module loaded
# keeps its file (the linker rewriting it in place killed such a
# process with SIGBUS).
$(MODULE): $(CORE_SRC) $(LUA_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CORE_SRC) $(LUA_SRC) $(SO_LDFLAGS) -o $@.new
	mv -f $@.new $@

# busted's own summary, then the plain "N passed, N failed" line CI reads.
build-asan/conc/core.so: $(CORE_SRC) $(LUA_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_CFLAGS) $(ASAN_FLAGS) $(CORE_SRC) $(LUA_SRC) \
	  $(SO_LDFLAGS) $(ASAN_FLAGS) -o $@

# ASan + UBSan, no recovery, leak checking on.
asan: build-asan/conc/core.so
	$(call SAN_RUN,asan,ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 LD_PRELOAD=$(LIBASAN))

TSAN_FLAGS = -fsanitize=thread
build-tsan/conc/core.so: $(CORE_SRC) $(LUA_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_CFLAGS) $(TSAN_FLAGS) $(CORE_SRC) $(LUA_SRC) \
	  $(SO_LDFLAGS) $(TSAN_FLAGS) -o $@

build-tsan/lua_host: csrc/test/lua_host.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -g -O1 $(TSAN_FLAGS) -I$(LUA_INC) $< -o $@ \
	  -llua5.4 -Wl,-E

# ThreadSanitizer: busted run by a TSan-linked host (see TOOLCHAIN notes).
tsan: build-tsan/conc/core.so build-tsan/lua_host
	CONC_SANITIZER=tsan CONC_CPATH=$(CURDIR)/build-tsan/?.so \
	CONC_LUA=$(CURDIR)/build-tsan/lua_host \
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 allocator_may_return_null=1" \
	  build-tsan/lua_host $(BUSTED) --ignore-lua -o utfTerminal \
	  --cpath=./build-tsan/?.so

# Memcheck over the core specs (the module built without sanitizers);
# any error fails the run. CONC_HEAP=off: worker states allocate every
# block with malloc, for memcheck to see it (ASan checks the heap).
VALGRIND_SPECS = spec/chan_spec.lua spec/select_spec.lua spec/codec_spec.lua \
                 spec/sync_spec.lua spec/ctx_spec.lua spec/time_spec.lua \
                 spec/task_end_spec.lua
valgrind: $(MODULE)
	CONC_SANITIZER=valgrind CONC_HEAP=off \
	CONC_LUA="valgrind -q --error-exitcode=3 --leak-check=full \
	  --errors-for-leak-kinds=definite --show-leak-kinds=definite lua5.4" \
	valgrind -q --error-exitcode=3 --leak-check=full \
	  --errors-for-leak-kinds=definite --show-leak-kinds=definite --trace-children=no \
	  $(LUA) $(BUSTED) --ignore-lua -o utfTerminal $(VALGRIND_SPECS)

# Helgrind over the core specs: the module built into build-helgrind/
# with -DCONC_VALGRIND, which annotates the happens-before edges of
# conc's own lock, waiter and reference counts (see csrc/core/internal.h);
# valgrind/helgrind.supp lists the deliberate lock-free reads. Any
# report fails the run.
HELGRIND_SPECS = spec/chan_spec.lua spec/select_spec.lua spec/sync_spec.lua \
                 spec/ctx_spec.lua spec/time_spec.lua spec/codec_spec.lua \
                 spec/worker_spec.lua spec/sched_spec.lua
HELGRIND = valgrind -q --tool=helgrind --fair-sched=yes --error-exitcode=3 \
           --suppressions=$(CURDIR)/valgrind/helgrind.supp
build-helgrind/conc/core.so: $(CORE_SRC) $(LUA_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_CFLAGS) -DCONC_VALGRIND $(CORE_SRC) \
	  $(LUA_SRC) $(SO_LDFLAGS) -o $@

helgrind: build-helgrind/conc/core.so
	CONC_SANITIZER=helgrind CONC_HEAP=off \
	CONC_CPATH=$(CURDIR)/build-helgrind/?.so \
	CONC_LUA="$(HELGRIND) $(LUA)" \
	  $(HELGRIND) $(LUA) $(BUSTED) --ignore-lua -o utfTerminal \
	  --cpath=./build-helgrind/?.so $(HELGRIND_SPECS)

# Stress: the driver (stress/stress.lua) runs STRESS_OPS conc operations
# of mixed channel, select, close, context and spawn traffic with
# exact-once accounting of every message and prints
#   stress: seed S, N operations, F failures
# (non-zero exit if F > 0); then the #stress specs (spec/stress_spec.lua).
# `make stress` runs 10 M operations, `make stress-short` (CI) 1 M. A seed
# reproduces a run's choices: `make stress SEED=123` (or STRESS_SEED=123).
STRESS_OPS ?= 10000000
STRESS_ENV = LUA_PATH_5_4='./lua/?.lua;./lua/?/init.lua;;' \
             LUA_CPATH_5_4='./build/?.so;;' $(if $(SEED),STRESS_SEED=$(SEED))
# Both also park 10,000 tasks in every kind of blocking call
# (spec/tasks_spec.lua's CONC_TASKS_N; `make test` parks 1,000).
STRESS_TASKS = CONC_TASKS_N=10000 $(LUA) $(BUSTED) -o utfTerminal \
               --filter=every spec/tasks_spec.lua
stress: $(MODULE)
	$(STRESS_ENV) STRESS_OPS=$(STRESS_OPS) $(LUA) stress/stress.lua
	$(LUA) $(BUSTED) -o utfTerminal --run=stress
	$(STRESS_TASKS)

stress-short: $(MODULE)
	$(STRESS_ENV) STRESS_OPS=1000000 $(LUA) stress/stress.lua
	$(LUA) $(BUSTED) -o utfTerminal --run=stress
	$(STRESS_TASKS)

# C tests of the core and of the workers' heap, without Lua, under
# ASan+UBSan and TSan, then the reproductions of core bugs found and
# fixed (each must not reproduce).
ctest:
	csrc/test/run.sh
	csrc/test/repro/run.sh

# The codec's libFuzzer targets, a fixed number of executions each.
fuzz-smoke:
	fuzz/run.sh

# The C library a host links (docs/embedding.md): the core and the
# binding compiled with -DCONC_BUILD_LIB, which exports what csrc/conc.h
# and csrc/conc_lua.h declare (CONC_PUBLIC) and nothing else. The static
# library is one object, a partial link of them all whose hidden symbols
# are made local, so a host linking it meets none of conc's internal
# names. Lua itself is not linked in: the host provides it. SAN=asan
# builds the libraries, the host example and its tests with ASan + UBSan
# into build-asan/ instead of build/.
SAN      ?=
ifeq ($(SAN),)
LIB_DIR   = build
LIB_SAN   =
else ifeq ($(SAN),asan)
LIB_DIR   = build-asan
LIB_SAN   = $(SAN_CFLAGS) $(ASAN_FLAGS)
else
$(error SAN=$(SAN): only SAN=asan is supported here)
endif
LIB_CFLAGS = $(ALL_CFLAGS) -DCONC_BUILD_LIB $(LIB_SAN)
LIB_OBJS   = $(patsubst csrc/%.c,$(LIB_DIR)/lib-obj/%.o,$(CORE_SRC) $(LUA_SRC))
LIBS       = $(LIB_DIR)/libconc.a $(LIB_DIR)/libconc.so
OBJCOPY   ?= objcopy

lib: $(LIBS)

$(LIB_DIR)/lib-obj/%.o: csrc/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c $< -o $@

$(LIB_DIR)/libconc.a: $(LIB_OBJS)
	$(LD) -r -o $(LIB_DIR)/lib-obj/conc.o $(LIB_OBJS)
	$(OBJCOPY) --localize-hidden $(LIB_DIR)/lib-obj/conc.o
	rm -f $@
	$(AR) rcs $@ $(LIB_DIR)/lib-obj/conc.o

$(LIB_DIR)/libconc.so: $(LIB_OBJS)
	$(CC) $(LIB_CFLAGS) $(LIB_OBJS) $(SO_LDFLAGS) -Wl,-soname,libconc.so \
	  -o $@

# The exports of both libraries against the declarations of the two
# headers, then a program that defines every internal name of the
# objects links with libconc.a (no clash), then the embedding tests.
EMBED_TEST = $(LIB_DIR)/embed/test_embed
lib-check: $(LIBS) $(EMBED_TEST) $(MODULE)
	$(LUA) scripts/check-lib.lua $(LIB_DIR) "$(CC) $(LIB_SAN)" $(MODULE)
	$(EMBED_RUN) $(EMBED_TEST)

HOST_CFLAGS = -std=c11 -D_GNU_SOURCE -pthread $(WARN) -Icsrc -I$(LUA_INC) \
              $(CFLAGS) $(LIB_SAN)
HOST_LIBS   = -llua5.4 -lm -ldl -pthread
# The host examples run from the source tree: lua/ holds the facade
# "conc" (lua/conc/init.lua); no cpath, so nothing loads conc/core.so.
EMBED_RUN   = LUA_PATH_5_4='./lua/?.lua;./lua/?/init.lua' LUA_CPATH_5_4='' \
              $(if $(SAN),ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
              UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)

$(EMBED_TEST): csrc/test/embed/test_embed.c $(LIB_DIR)/libconc.a
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) $< $(LIB_DIR)/libconc.a $(HOST_LIBS) -o $@

# examples/host: a C program with its own sensor thread feeding a conc
# channel that a Lua worker pool consumes; linked with libconc.a, and
# again with libconc.so. Its last line must account for every reading.
HOST_WANT = host: 2000 readings produced, 2000 consumed once each, 0 missing, 0 duplicated
host-example: $(LIB_DIR)/host/host $(LIB_DIR)/host/host-shared
	@for h in $^; do \
	  echo "== $$h"; \
	  out=$$($(EMBED_RUN) LD_LIBRARY_PATH=$(LIB_DIR) $$h \
	    examples/host/readings.lua) || { echo "$$out"; exit 1; }; \
	  echo "$$out"; \
	  [ "$$(echo "$$out" | tail -1)" = "$(HOST_WANT)" ] || \
	    { echo "host-example: expected: $(HOST_WANT)"; exit 1; }; \
	done

HOST_SRC = examples/host/host.c examples/host/calib.c
$(LIB_DIR)/host/host: $(HOST_SRC) examples/host/calib.h $(LIB_DIR)/libconc.a
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) $(HOST_SRC) $(LIB_DIR)/libconc.a $(HOST_LIBS) -o $@

$(LIB_DIR)/host/host-shared: $(HOST_SRC) examples/host/calib.h $(LIB_DIR)/libconc.so
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) $(HOST_SRC) -L$(LIB_DIR) -lconc $(HOST_LIBS) -o $@

# The linters first; `make -k test` runs the specs even if one fails.
test: lint specs

# The specs with 1 and with 8 scheduler threads (the default is the CPUs
# online): tasks' interleavings differ, their outcomes must not.
specs-procs: $(MODULE)
	CONC_MAXPROCS=1 $(LUA) $(BUSTED) -o utfTerminal
	CONC_MAXPROCS=8 $(LUA) $(BUSTED) -o utfTerminal

# The sanitizers, valgrind, Helgrind, the stress run, the C tests and the
# fuzz smoke test with 1 and with 8 scheduler threads (CI runs them with
# the CPUs online and the specs with 1 and 8: specs-procs). ~30 minutes
# on 2 cores; not part of CI's run for that reason.
procs-check:
	for n in 1 8; do \
	  CONC_MAXPROCS=$$n $(MAKE) asan tsan valgrind helgrind stress-short \
	    ctest fuzz-smoke || exit 1; \
	done

specs: $(MODULE)
	@set -o pipefail; $(LUA) $(BUSTED) -o utfTerminal | tee build/test.log
	@sed -E 's/\x1b\[[0-9;]*m//g' build/test.log | awk '/successes \//{ \
	  print $$1 " passed, " $$4+$$7 " failed" }' | tail -1

# ---- linters ---------------------------------------------------------
# Each must pass on the tree; each configuration says why any check is
# off (.luacheckrc, .clang-format, .clang-tidy, csrc/test/.clang-tidy,
# .cppcheck/). Packages: `sh scripts/install-deps lua-check
# clang-format-19 clang-tidy-19 cppcheck`. A first run takes 1-2 minutes on
# two cores, nearly all of it clang-tidy; then about 10 s, as clang-tidy
# skips the files that passed and did not change.
LUACHECK     ?= luacheck
CLANG_FORMAT ?= clang-format-19
CLANG_TIDY   ?= clang-tidy-19
CPPCHECK     ?= cppcheck
LINT_JOBS    ?= $(shell nproc)
C_SOURCES     = $(shell find csrc -name '*.c' | sort)
C_FILES       = $(shell find csrc -name '*.[ch]' | sort)
LUA_DIRS      = lua spec examples bench stress

lint: luacheck format-check cppcheck tidy

luacheck:
	$(LUACHECK) -q $(LUA_DIRS)

# A check, never a rewrite: `$(CLANG_FORMAT) -i <files>` fixes what it
# reports.
format-check:
	$(CLANG_FORMAT) --dry-run --Werror $(C_FILES)

# One configuration, the build's (Linux, GCC, _GNU_SOURCE); without the
# Lua headers, which cppcheck does not need to follow.
cppcheck:
	$(CPPCHECK) -q -j$(LINT_JOBS) --std=c11 --error-exitcode=1 \
	  --enable=warning,portability,performance,style \
	  --library=.cppcheck/conc.cfg \
	  --suppressions-list=.cppcheck/suppressions.txt \
	  -D_GNU_SOURCE -D__GNUC__ -D__linux__ -D__x86_64__ \
	  --template='{file}:{line}: {severity}: {message} [{id}]' csrc

# Every .c file with the build's flags, LINT_JOBS at once, each file's
# report printed whole; headers through the files that include them
# (HeaderFilterRegex). A file passed is remembered in build/tidy/ until
# it, a header or a configuration changes. Dropped from the output:
# clang-tidy's count of the (hidden) warnings in system headers.
TIDY_FLAGS = -std=c11 -D_GNU_SOURCE -pthread -I$(LUA_INC) -Icsrc
TIDY_OK    = $(patsubst %,build/tidy/%.ok,$(C_SOURCES))
tidy:
	@$(MAKE) --no-print-directory -j$(LINT_JOBS) --output-sync=target \
	  tidy-files

tidy-files: $(TIDY_OK)

build/tidy/%.ok: % $(filter %.h,$(C_FILES)) .clang-tidy csrc/test/.clang-tidy \
                 Makefile
	@mkdir -p $(dir $@)
	@set -o pipefail; $(CLANG_TIDY) --quiet $< -- $(TIDY_FLAGS) 2>&1 | \
	  sed -E '/^[0-9]+ warnings? generated\.$$/d'
	@touch $@

demo: $(MODULE)
	LUA_PATH_5_4='./lua/?.lua;./lua/?/init.lua;;' \
	LUA_CPATH_5_4='./build/?.so;;' $(LUA) examples/worker_pool.lua

# The chart is drawn even when a workload failed (it leaves that one
# out); the target still fails then.
bench: $(MODULE)
	bench/run; rc=$$?; bench/chart && exit $$rc

bench-quick: $(MODULE)
	bench/run --quick

# The rocks a user would get (scripts/check-rock): luarocks lint, the
# binary rock (luarocks make --pack-binary-rock) and the source rock
# (luarocks pack, offline), each installed into a throwaway --tree and run
# from outside the source tree. The rocks are left in build/rock/.
rock-check:
	scripts/check-rock

clean:
	rm -rf build build-asan build-tsan build-valgrind build-helgrind \
	  build-ctest-asan build-ctest-tsan build-fuzz
