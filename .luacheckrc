-- luacheck configuration for conc (`make luacheck`, part of `make lint`).
-- Run from the repository root: luacheck lua spec examples bench stress

std = "lua54"
max_line_length = 80  -- docs/STYLE: 80 columns

-- A worker function takes what it uses as parameters named like the
-- caller's locals: conc.go(function(ch, wg) ... end, ch, wg). The
-- parameter shadows the upvalue on purpose, so the body names the copy
-- that arrived in the worker (values cross states by copy), never the
-- caller's. That is the idiom docs/API.md teaches, in every spec and
-- example, so shadowing an upvalue (431 local, 432 argument, 433 loop
-- variable) is not reported. Shadowing within one function (421-423)
-- still is.
ignore = { "431", "432", "433" }

-- busted's globals (describe, it, assert, spy, ...).
files["spec/"] = { std = "+busted" }

-- Specs that prove each task starts with fresh globals and fresh
-- standard libraries set these globals and library fields on purpose.
files["spec/worker_spec.lua"] = {
  globals = { "MY_GLOBAL_FROM_MAIN", "LEAKED" },
}
files["spec/hardening_codec_spec.lua"] = { globals = { "hc_marker" } }
files["spec/fresh_state_spec.lua"] = {
  globals = { "string.shout", "string.x", "math.pi", "table.insert" },
}

-- luacheck 1.1 does not count the use a <close> variable gets when its
-- scope ends: Go's `ctx, cancel := ...; defer cancel()` is written
-- `local ctx, cancel <close> = ...`, and these cancel functions are
-- called that way only.
files["spec/ctx_spec.lua"] = { ignore = { "211/cancel" } }
files["examples/goroutine_leak.lua"] = { ignore = { "211/cancel" } }
files["examples/graceful_shutdown.lua"] = { ignore = { "211/cancel" } }
files["examples/timeout_select.lua"] = { ignore = { "211/stop" } }

-- The benchmarks print one long format line each for bench/run to parse.
files["bench/"] = { max_line_length = 120 }

exclude_files = { "build/", "build-*/", "conc/" }

-- The LuaLS definition files (`---@meta`) declare functions with empty
-- bodies: their parameters exist for the annotations, unused by design.
files["lua/conc/meta/"] = {
  -- (241: a class table is filled with its methods, never read in Lua)
  ignore = { "212", "241" }, max_line_length = 100,
}

-- The API coverage spec quotes long names and messages verbatim.
files["spec/api_coverage_spec.lua"] = { max_line_length = 100 }
files["spec/doc_blocks_spec.lua"] = { max_line_length = 100 }
