-- Checks that stay honest: no spec or script may pass over what it is
-- meant to check. Each rule below closes an escape hatch found once
-- (issue 11): a test build that left a source out when it did not
-- compile, an `it` that returned early and passed, a fallback that hid a
-- failure. A skip that is justified is listed here with its reason.

local lines_of = require("support").file_lines

-- The spec files, as busted finds them, but this one (its patterns
-- would match themselves).
local function spec_files()
  local p = io.popen("ls spec/*_spec.lua")
  local t = {}
  for path in p:lines() do
    if path ~= "spec/no_skip_spec.lua" then t[#t + 1] = path end
  end
  p:close()
  return t
end

-- Every "path:line: text" of paths whose text matches one of patterns.
local function matches(paths, patterns)
  local found = {}
  for _, path in ipairs(paths) do
    for n, line in ipairs(lines_of(path)) do
      for _, pat in ipairs(patterns) do
        if line:find(pat) then
          found[#found + 1] = ("%s:%d: %s"):format(path, n, line)
        end
      end
    end
  end
  return found
end

-- The skips allowed, by file and the reason its comment gives.
local ALLOWED_PENDING = {
  -- (as worker_spec's: a timer thread refused for want of memory)
  ["spec/ctx_spec.lua"] = {"not under a sanitizer (ulimit -v)"},
  ["spec/worker_spec.lua"] = {
    -- memcheck and helgrind run with CONC_HEAP=off: there is no worker
    -- heap to give back, malloc holds the blocks
    "CONC_HEAP=off",
    -- ASan and TSan reserve terabytes of address space: the spec's
    -- ulimit -v stops them before the script starts (the plain run
    -- covers it)
    "not under a sanitizer",
  },
  -- ThreadSanitizer defers an asynchronous signal until its thread
  -- enters an intercepted call; conc's threads park in raw futex calls,
  -- so under TSan a signal sent while all park is never handled
  ["spec/signal_spec.lua"] = {"not under TSan"},
  ["spec/examples_spec.lua"] = {"not under TSan"},
  -- the same for SIGURG, which preempts a task looping in the Lua VM;
  -- and a scheduling share that holds only at the plain build's speed
  -- (a pipeline into the main script: the plain run covers it); and
  -- memory given back by malloc_trim, which the sanitizers' and
  -- Valgrind's allocators (not malloc's arenas) make a no-op
  ["spec/tasks_spec.lua"] = {"not under TSan: its preemption signal",
    "not under a sanitizer: its turns outlast",
    "not under a sanitizer: its allocator"},
}

-- The scripts that build and run the checks.
local SCRIPTS = {"Makefile", ".ci/run", "csrc/test/run.sh",
                 "csrc/test/repro/run.sh", "fuzz/run.sh"}

describe("no skipped checks", function()
  it("a spec is pending only for a reason listed here", function()
    local found = matches(spec_files(), {"pending%("})
    for _, hit in ipairs(found) do
      local path = hit:match("^([^:]+):")
      local ok = false
      for _, why in ipairs(ALLOWED_PENDING[path] or {}) do
        if hit:find(why, 1, true) then ok = true end
      end
      assert(ok, "a pending spec not listed in spec/no_skip_spec.lua: " .. hit)
    end
    assert.are.equal(12, #found, table.concat(found, "\n"))
  end)

  it("no spec returns early from a test on a condition", function()
    assert.are.same({}, matches(spec_files(), {"then return end"}))
  end)

  it("no build or test script leaves a source out or hides a failure",
    function()
      assert.are.same({}, matches(SCRIPTS, {
        "%-fsyntax%-only",   -- probing whether a source compiles, to skip it
        "|| *true",          -- a failure made a success
        "|| *:",
        "2>/dev/null",       -- an error hidden
        "^\t%-",             -- make: a recipe line whose failure is ignored
        "set %+e",
      }))
    end)

  it("CI stops at the first failing step", function()
    assert.is_truthy(table.concat(lines_of(".ci/run"), "\n"):find(
      "\nset %-euo pipefail\n"))
  end)

  it("the C tests and the fuzz targets build every source", function()
    for _, script in ipairs({"csrc/test/run.sh", "csrc/test/repro/run.sh",
                             "fuzz/run.sh"}) do
      local text = table.concat(lines_of(script), "\n")
      assert.is_truthy(text:find("=(csrc/core/*.c", 1, true), script)
    end
  end)
end)
