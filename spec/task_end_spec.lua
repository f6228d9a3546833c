-- A task's end: after an error, and os.exit. `make valgrind` runs this
-- file, and its scripts under memcheck (CONC_LUA); `make asan` under
-- ASan's leak check: the end must touch nothing it freed, leak nothing.
local support = require("support")

describe("a task's end", function()
  it("a memory-limited task that fails: its end reads no freed coroutine",
     function()
    -- The coroutine an error ended is dropped, and the limit's last
    -- collection freed it; the end then read (and, once a preemption
    -- had hooked it, wrote) its hook: an invalid read and writes under
    -- memcheck, every run.
    local out, rc = support.run_script([[
      local conc = require("conc")
      for round = 1, 3 do
        local h = conc.go({memory_limit = 1000000}, function()
          error("plain " .. round)
        end)
        local ok, err = h:join()
        assert(not ok and err:find("plain " .. round, 1, true), err)
        -- its <close> computes past a slice while the error unwinds
        h = conc.go({memory_limit = 300000}, function()
          local x <close> = setmetatable({}, {__close = function()
            local t = {}
            for i = 1, 1e6 do t[i] = {} end
          end})
          error("closed")
        end)
        ok, err = h:join()
        assert(not ok, "the task did not fail")
      end
      print("ended")
    ]], 300)
    assert.are.equal(0, rc, out)
    assert.matches("ended", out)
  end)

  it("os.exit(code, true) in a task exits with code, its state closed",
     function()
    -- Lua's os.exit closed the task's state with lua_close, which left
    -- conc's record of its allocator: a leak under ASan, whose report
    -- made the status 1.
    local out, rc = support.run_script([[
      local conc = require("conc")
      conc.go(function()
        local kept = setmetatable({}, {__gc = function()
          io.stdout:write("collected\n")
          io.stdout:flush()
        end})
        require("conc").sleep(0.01)
        os.exit(7, kept ~= nil)
      end)
      conc.sleep(30)
    ]], 120)
    assert.are.equal(7, rc, out)
    assert.matches("collected", out)
  end)
end)
