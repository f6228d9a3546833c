local support = require("support")

-- Every example runs to completion and prints what it should.
local expected = {
  ["goroutine_leak.lua"] = {contains = {"leaked workers: 1 (chan send at",
    "fixed:\tnil\tcontext deadline exceeded",
    "workers left besides the leaked one:\t0"}},
  ["worker_pool.lua"] = {lines = 20, pattern = "^Job %d+: Worker %d processed: task%-%d+$"},
  ["generic_pool.lua"] = {lines = 10, pattern = "^%d+$",
    contains = {"1\n4\n9\n16\n25\n36\n49\n64\n81\n100\n"}},
  ["pipeline.lua"] = {lines = 5, pattern = "^%d+$",
    contains = {"4\n16\n36\n64\n100\n"}},
  ["pipeline_cancel.lua"] = {contains = {"1\n4\n9\n"},
    last = "canceled; workers left:\t0"},
  ["fan_out_fan_in.lua"] = {last = "1 4 9 16 25 36 49 64 81 100"},
  ["fan_in_ctx.lua"] = {contains = {"received\t6",
    "closed by the context:\tcontext deadline exceeded",
    "got some ticks:\ttrue"}},
  ["pubsub.lua"] = {lines = 3, pattern = "^Sub[12] received: %a+ %- .+$",
    contains = {"Sub1 received: orders - Order #123",
      "Sub1 received: payments - Payment received",
      "Sub2 received: orders - Order #123"}},
  ["cond_queue.lua"] = {last = "total\t30"},
  ["buffer_pool.lua"] = {lines = 4, pattern = "^worker %d: %d+ requests, [01] buffers created$"},
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
    end)
  end
  p:close()
end)
