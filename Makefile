# conc: build, test, benchmark.
#   make            build build/conc/core.so (the C module conc.core)
#   make test       run the whole test suite (busted, spec/)
#   make bench      run the benchmarks against their Go twins (bench/)
#   make demo       the chapter's worker pool, in Lua

SHELL    := /bin/bash
LUA      ?= lua5.4
LUA_INC  ?= /usr/include/lua5.4
BUSTED   ?= /usr/bin/busted
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
            -Wstrict-prototypes
ALL_CFLAGS = -std=c11 -fPIC -fvisibility=hidden -D_GNU_SOURCE -pthread \
             $(WARN) -I$(LUA_INC) $(CFLAGS)
SO_LDFLAGS = -shared -pthread -Wl,-z,nodelete

CORE_SRC = $(wildcard csrc/core/*.c)
LUA_SRC  = $(wildcard csrc/lua/*.c)
HEADERS  = csrc/conc.h $(wildcard csrc/core/*.h csrc/lua/*.h)
MODULE   = build/conc/core.so

.PHONY: all test demo bench bench-quick clean

all: $(MODULE)

$(MODULE): $(CORE_SRC) $(LUA_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CORE_SRC) $(LUA_SRC) $(SO_LDFLAGS) -o $@

# busted's own summary, then the plain "N passed, N failed" line CI reads.
test: $(MODULE)
	@set -o pipefail; $(LUA) $(BUSTED) -o utfTerminal | tee build/test.log
	@sed -E 's/\x1b\[[0-9;]*m//g' build/test.log | awk '/successes \//{ \
	  print $$1 " passed, " $$4+$$7 " failed" }' | tail -1

demo: $(MODULE)
	LUA_PATH_5_4='./lua/?.lua;./lua/?/init.lua;;' \
	LUA_CPATH_5_4='./build/?.so;;' $(LUA) examples/worker_pool.lua

bench: $(MODULE)
	bench/run

bench-quick: $(MODULE)
	bench/run --quick

clean:
	rm -rf build
