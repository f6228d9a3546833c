-- Hardening (issue 11): what a determined user did to conc, and what it
-- must do instead. One `describe` per point; the codec's points, the
-- receive-only channels and the diagnostics have spec files of their own.
local conc = require("conc")
local support = require("support")

describe("the end of the program", function()
  -- Point 8: a finalizer that waits while the main state closes.
  it("a finalizer that waits forever at exit is reported as a deadlock",
    function()
      -- Made before conc is loaded: finalized after conc's own sentinel.
      local out, rc, took = support.run_script([[
        local early = setmetatable({}, {__gc = function()
          require("conc").chan():recv()
        end})
        local conc = require("conc")
        print("script done")
      ]], 20)
      assert.equal(2, rc)
      assert.matches("script done", out, 1, true)
      assert.matches("all workers are asleep - deadlock!", out, 1, true)
      assert.matches("main: waits in", out, 1, true)
      assert.is_true(took < 10)
    end)

  it("a finalizer made after conc was loaded is reported too", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local ch = conc.chan()
      local late = setmetatable({}, {__gc = function() ch:recv() end})
    ]], 20)
    assert.equal(2, rc)
    assert.matches("all workers are asleep - deadlock!", out, 1, true)
  end)

  it("a finalizer may still wait for a worker at exit", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local ch = conc.chan()
      conc.go(function(c) c:send("from the worker") end, ch)
      local late = setmetatable({}, {__gc = function()
        print(ch:recv())
      end})
    ]], 20)
    assert.equal(0, rc)
    assert.equal("from the worker\ttrue\n", out)
  end)

  -- Point 9: the report of a failed worker nobody joined.
  it("reports a non-string error of a never-joined worker in full",
    function()
      local out, rc = support.run_script([[
        local conc = require("conc")
        assert(conc.go(function() error({code = 1}) end):wait())
        assert(conc.go(function() error(false) end):wait())
        collectgarbage()
        collectgarbage()
        print("collected")
      ]])
      assert.equal(0, rc)
      assert.matches("failed and was never joined: (error object is a " ..
        "table value)\n", out, 1, true)
      assert.matches("failed and was never joined: (error object is a " ..
        "boolean value)\n", out, 1, true)
    end)

  -- Point 16: workers that are only returning when the script ends.
  it("does not report workers that are only returning at the end",
    function()
      -- Each worker's last channel operation releases the main script,
      -- then it works ~1 ms before it returns (a slow <close>, a deferred
      -- wg:done()): the script ends while every worker still runs.
      local out, rc = support.run_script([[
        local conc = require("conc")
        local function busy()
          local x = 0
          for i = 1, 200000 do x = x + i end
          return x
        end
        for round = 1, 20 do
          local results = conc.chan(4)
          local wg = conc.waitgroup()
          for w = 1, 4 do
            wg:add(1)
            conc.go(function(out, g, work)
              local _ <close> = setmetatable({}, {__close = function()
                work()
                g:done()
              end})
              out:send(w)
            end, results, wg, busy)
          end
          for _ = 1, 4 do results:recv() end
        end
        -- the workers of the last round are still in their <close>
        print("done")
      ]], 30)
      assert.equal(0, rc)
      assert.equal("done\n", out)
    end)

  it("reports a worker still blocked at the end, without waiting long",
    function()
      local out, rc, took = support.run_script([[
        local conc = require("conc")
        local h = conc.go(function() conc.chan():recv() end)
        local t0 = conc.now()
        print("spawned", h:id())
      ]], 20)
      assert.equal(0, rc)
      assert.matches("the main script ended with 1 worker still running " ..
        "(id 1)", out, 1, true)
      assert.is_true(took < 10)
    end)

  it("reports a worker that is still computing after the grace", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local ready = conc.chan()
      conc.go(function(r) r:send(true) while true do end end, ready)
      ready:recv()
    ]], 20)
    assert.equal(0, rc)
    assert.matches("still running (id 1)", out, 1, true)
  end)
end)
