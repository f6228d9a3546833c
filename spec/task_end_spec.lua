-- A task's end after an error. `make valgrind` runs this file, and its
-- scripts under memcheck (CONC_LUA): the end must touch nothing it freed.
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
end)
