local conc = require("conc")
local support = require("support")

describe("deadlock detection", function()
  it("stops the program when every worker and main wait for good", function()
    local out, rc, dt = support.run_script([[
      local conc = require("conc")
      local a, b = conc.chan(), conc.chan()
      conc.go(function() a:recv() end)
      b:recv()
      print("never printed")
    ]])
    assert.are.equal(2, rc)
    assert.is_true(dt < 10)
    assert.matches("fatal error: all workers are asleep - deadlock!", out, 1,
      true)
    assert.matches("main: waits in chan receive at [^\n]*:%d+", out)
    assert.matches("worker 1: waits in chan receive at [^\n]*:%d+", out)
    assert.is_nil(out:find("never printed", 1, true))
  end)

  it("reports thousands of workers: the main script's line first, whole " ..
     "lines, then the count of those left out", function()
    -- A ring of tasks each waiting for the one before. The report
    -- was a 4 KB buffer: 90 lines, cut mid-line, without main's.
    -- (1,300 under a sanitizer: 3,000 took TSan over a minute; a report
    -- holds some 1,200 such lines)
    local n = os.getenv("CONC_SANITIZER") and 1300 or 3000
    local out, rc = support.run_script(([[
      local conc = require("conc")
      local n, chs, hs = @N@, {}, {}
      for i = 1, n do chs[i] = conc.chan() end
      for i = 1, n do
        hs[i] = conc.go(function(a, b) a:recv(); b:send(1) end,
                        chs[i], chs[i % n + 1])
      end
      hs[1]:join()
    ]]):gsub("@N@", tostring(n)), 240)
    assert.are.equal(2, rc, out)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal("fatal error: all workers are asleep - deadlock!",
                     lines[1])
    assert.matches("^main: waits in worker join at [^\n]*:%d+$", lines[2])
    local shown, seen = 0, {}
    for i = 3, #lines - 1 do
      local id = lines[i]:match(
        "^worker (%d+): waits in chan receive at .*:%d+$")
      assert.is_truthy(id, lines[i])
      assert.is_nil(seen[id], "twice: " .. lines[i])
      seen[id], shown = true, shown + 1
    end
    local more = tonumber(lines[#lines]:match("^%.%.%. and (%d+) more$"))
    assert.is_truthy(more, lines[#lines])
    assert.are.equal(n, shown + more)
    assert.is_true(shown >= 500, shown)
  end)

  it("sees a deadlock that appears when the last other worker ends",
    function()
      local out, rc = support.run_script([[
        local conc = require("conc")
        local ch = conc.chan(1)
        conc.go(function(c) c:recv() c:recv() error("gone") end, ch)
        for i = 1, 10 do ch:send(i) end  -- the worker dies after two
      ]])
      assert.are.equal(2, rc)
      assert.matches("main: waits in chan send", out, 1, true)
    end)

  it("sees a deadlock on mutexes, conds and joins too", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local mu = conc.mutex()
      mu:lock()
      local h = conc.go(function() mu:lock() end)
      h:join()
    ]])
    assert.are.equal(2, rc)
    assert.matches("worker 1: waits in mutex lock", out, 1, true)
    assert.matches("main: waits in worker join", out, 1, true)
  end)

  it("no false positive while a timer can still wake someone", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local never = conc.chan()
      conc.go(function() never:recv() end)
      local v = conc.after(0.2):recv()
      print("woken by the timer", v ~= nil)
      never:close()
    ]])
    assert.are.equal(0, rc)
    assert.matches("woken by the timer\ttrue", out, 1, true)
  end)

  it("no false positive while a worker sleeps or runs", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local ch = conc.chan()
      conc.go(function() conc.sleep(0.1); ch:send("late") end)
      conc.go(function()
        local x = 0
        for i = 1, 2e6 do x = x + i end
        ch:send(x)
      end)
      print(ch:recv(), ch:recv())
    ]])
    assert.are.equal(0, rc)
    assert.matches("late", out, 1, true)
  end)

  it("no false positive with a deadline: a timed wait is not asleep for good",
    function()
      local out, rc = support.run_script([[
        local conc = require("conc")
        local ch = conc.chan()
        conc.go(function() ch:recv() end)
        print(select(3, ch:recv(0.1)))
        ch:close()
      ]])
      assert.are.equal(0, rc)
      assert.matches("timeout", out, 1, true)
    end)

  it("in error mode the main script's wait raises, and it can go on",
    function()
      local out, rc = support.run_script([[
        local conc = require("conc")
        conc.set_deadlock_mode("error")
        local a = conc.chan()
        local ok, err = pcall(function() return a:recv() end)
        print(ok, err)
        local ok2, err2 = pcall(conc.select, {{"recv", a}})
        print(ok2, err2)
        print("still running")
      ]])
      assert.are.equal(0, rc)
      assert.matches("false\t[^\n]*conc.chan:recv: " ..
                     "all workers are asleep %- deadlock!", out)
      assert.matches("conc.select: all workers are asleep", out, 1, true)
      assert.matches("still running", out, 1, true)
    end)

  it("off: no check (the program hangs as it would without conc's help)",
    function()
      local _, rc = support.run_script([[
        local conc = require("conc")
        conc.set_deadlock_mode("off")
        conc.chan():recv()
      ]], 1)
      assert.are.equal(124, rc)  -- killed by timeout, not stopped by conc
      assert.has_error(function() conc.set_deadlock_mode("maybe") end)
    end)
end)

describe("conc.workers", function()
  it("lists each live worker: id, state, what it waits in, where, age",
    function()
      local gate = conc.chan()
      local h = conc.go(function(g) return g:recv() end, gate)
      local entry
      local t0 = conc.now()
      repeat  -- until the worker has gone to sleep in its receive
        for _, w in ipairs(conc.workers()) do
          if w.id == h:id() and w.state == "blocked" then entry = w end
        end
        if not entry then conc.sleep(0.005) end
      until entry or conc.now() - t0 > 5
      assert.is_table(entry)
      assert.are.equal("chan receive", entry.waiting_in)
      assert.matches("spec/sched_spec.lua:%d+", entry.where)
      assert.is_true(entry.age >= 0 and entry.age < 60)
      assert.is_string(entry.object)
      local main
      for _, w in ipairs(conc.workers()) do
        if w.id == 0 then main = w end
      end
      assert.are.equal("running", main.state)
      gate:send("go")
      assert.is_true((h:join()))
      for _, w in ipairs(conc.workers()) do
        assert.are_not.equal(h:id(), w.id)
      end
    end)

  it("shows a sleeping worker as sleeping", function()
    local h = conc.go(function() conc.sleep(0.3) end)
    local seen
    local t0 = conc.now()
    repeat
      for _, w in ipairs(conc.workers()) do
        if w.id == h:id() and w.state == "sleeping" then seen = w end
      end
    until seen or conc.now() - t0 > 5
    assert.is_table(seen)
    h:join()
  end)
end)

describe("conc.stats", function()
  it("counts live objects by type, workers and messages", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      collectgarbage()
      local base = conc.stats()
      local chans = {}
      for i = 1, 10 do chans[i] = conc.chan(1) end
      local mid = conc.stats()
      for i = 1, 10 do chans[i]:send(i); chans[i]:recv() end
      chans = nil
      collectgarbage()
      collectgarbage()
      local after = conc.stats()
      local start = conc.chan()
      local h = conc.go(function() start:recv() end)
      local busy = conc.stats()
      start:close()
      h:join()
      local function chans(s) return s.objects["conc.chan"] or 0 end
      print(chans(mid) - chans(base), chans(after) - chans(base),
            busy.workers, conc.stats().workers,
            after.messages - base.messages >= 10)
    ]])
    assert.are.equal(0, rc, out)
    assert.are.equal("10\t0\t1\t0\ttrue\n", out)
  end)
end)
