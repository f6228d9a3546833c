rockspec_format = "3.0"
package = "conc"
version = "scm-1"
source = {
  url = "git+https://github.com/conc-lua/conc.git",
}
description = {
  summary = "Go's concurrency for Lua 5.4: workers on OS threads, channels, select",
  detailed = [[
conc gives a Lua 5.4 script real parallelism the way Go gives it to a
program: workers that run on their own OS threads, each in its own
lua_State, channels with Go's semantics, select, contexts, timers, the
sync package, and the patterns built on them (worker pools, pipelines,
semaphores, rate limiters, circuit breakers, error groups, pub/sub).
A C core (pthreads, futexes) with a thin Lua binding; Linux only.
]],
  homepage = "https://github.com/conc-lua/conc",
  issues_url = "https://github.com/conc-lua/conc/issues",
  license = "MIT",
  labels = { "concurrency", "threads", "channels", "go" },
}
supported_platforms = { "linux" }
dependencies = {
  "lua >= 5.4, < 5.5",
}
build = {
  type = "builtin",
  modules = {
    ["conc.core"] = {
      sources = {
        "csrc/core/atomic.c", "csrc/core/breaker.c", "csrc/core/chan.c",
        "csrc/core/cmap.c", "csrc/core/ctx.c", "csrc/core/errgroup.c",
        "csrc/core/fiber.c", "csrc/core/hugemap.c", "csrc/core/limiter.c",
        "csrc/core/merge.c", "csrc/core/msg.c", "csrc/core/proc.c",
        "csrc/core/pubsub.c",
        "csrc/core/sched.c", "csrc/core/select.c", "csrc/core/sem.c",
        "csrc/core/signal.c", "csrc/core/sync.c", "csrc/core/timer.c",
        "csrc/core/waiter.c", "csrc/core/workpool.c", "csrc/lua/codec.c",
        "csrc/lua/heap.c", "csrc/lua/latomic.c", "csrc/lua/lbreaker.c",
        "csrc/lua/lchan.c", "csrc/lua/lcheck.c", "csrc/lua/lcloser.c",
        "csrc/lua/lconc.c",
        "csrc/lua/lctx.c", "csrc/lua/lerrgroup.c", "csrc/lua/lerrhint.c",
        "csrc/lua/lhost.c", "csrc/lua/llimiter.c", "csrc/lua/lmap.c",
        "csrc/lua/lmerge.c", "csrc/lua/lmsg.c", "csrc/lua/lobj.c",
        "csrc/lua/lpubsub.c", "csrc/lua/lsched.c", "csrc/lua/lselect.c",
        "csrc/lua/lsem.c", "csrc/lua/lsignal.c", "csrc/lua/lsync.c",
        "csrc/lua/ltime.c", "csrc/lua/lwait.c", "csrc/lua/lworker.c",
        "csrc/lua/lworkpool.c", "csrc/lua/pages.c", "csrc/lua/worker.c",
      },
      -- CONC_BUILD_MODULE: conc's C API stays hidden (csrc/conc.h).
      defines = { "_GNU_SOURCE", "CONC_BUILD_MODULE" },
      libraries = { "pthread" },
      incdirs = { "csrc" },
    },
    conc = "lua/conc/init.lua",
    ["conc.socket"] = "lua/conc/socket.lua",
    -- LuaLS definition files (---@meta): read by the language server,
    -- never required; see docs/API.md, "Editor support".
    ["conc.meta.conc"] = "lua/conc/meta/conc.lua",
    ["conc.meta.chan"] = "lua/conc/meta/chan.lua",
    ["conc.meta.time"] = "lua/conc/meta/time.lua",
    ["conc.meta.sync"] = "lua/conc/meta/sync.lua",
    ["conc.meta.patterns"] = "lua/conc/meta/patterns.lua",
  },
}
test = {
  type = "command",
  command = "make test",
}
