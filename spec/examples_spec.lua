local support = require("support")

-- Every example runs to completion and prints what it should.
local expected = {
  ["goroutine_leak.lua"] = {contains = {"leaked workers: 1 (chan send at",
    "fixed:\tnil\tcontext deadline exceeded",
    "workers left besides the leaked one:\t0"}},
  ["worker_pool.lua"] = {lines = 20, pattern = "^Job %d+: Worker %d processed: task%-%d+$"},
  ["cond_queue.lua"] = {last = "total\t30"},
  ["buffer_pool.lua"] = {lines = 4, pattern = "^worker %d: %d+ requests, [01] buffers created$"},
  ["once.lua"] = {lines = 7, pattern = "^[ocw][a-z]+ .*[%d/p]$",
    contains = {"opening connection to postgres://localhost/app\nworker 1",
      "worker 5: using connection #1\n"}, last = "connections opened: 1"},
  ["sync_map.lua"] = {contains = {"config -> config (computed by worker ",
    "user:2 -> user:2 (computed by worker ", "24 lookups, 3 keys cached"},
    last = "every worker got the stored value: true"},
  ["buffered_vs_unbuffered.lua"] = {lines = 4, pattern = "^[ub][a-z()2]+: ",
    contains = {"unbuffered: send 1 after 0.", "s, send 3 after 0.",
      "buffered(2): send 1 after 0.0s, send 2 after 0.0s, send 3 after 0."}},
  ["timeout_select.lua"] = {lines = 3, pattern = "^%a+: +result=",
    contains = {"fast:     result=done in 0.1s err=nil",
      "slow:     result=nil err=timeout",
      "canceled: result=nil err=context canceled"}},
  ["map_vs_rwmutex.lua"] = {contains = {"read-mostly (1% writes), 4 workers",
    "write-heavy (50% writes), 4 workers"}, count_ok = 6,
    last = "a map under a RWMutex for general use; a channel owner when "
      .. "the state needs a single writer."},
}

describe("examples", function()
  local p = io.popen("ls examples/*.lua")
  for path in p:lines() do
    local name = path:match("[^/]+$")
    it(name .. " runs", function()
      local f = assert(io.open(path))
      local code = f:read("a")
      f:close()
      local out, rc = support.run_script(code, 30)
      assert.are.equal(0, rc, out)
      -- every example states what it must print: a new one without an
      -- entry in `expected` fails here rather than pass unchecked
      local want = expected[name]
      assert(want, "no expected output for examples/" .. name)
      local lines = {}
      for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      if want.lines then
        assert.are.equal(want.lines, #lines, out)
        for _, line in ipairs(lines) do assert.matches(want.pattern, line) end
      end
      if want.last then assert.are.equal(want.last, lines[#lines]) end
      for _, text in ipairs(want.contains or {}) do
        assert.matches(text, out, 1, true)
      end
      if want.count_ok then -- timed lines: each variant checked its result
        local _, n = out:gsub("ops/s  ok\n", "")
        assert.are.equal(want.count_ok, n, out)
      end
    end)
  end
  p:close()
end)
