local conc = require("conc")

describe("time", function()
  it("conc.now is monotonic and in seconds", function()
    local a = conc.now()
    conc.sleep(0.02)
    local b = conc.now()
    assert.is_true(b - a >= 0.02)
    assert.is_true(b - a < 5)
  end)

  it("conc.sleep rejects bad durations; sleep(0) returns at once", function()
    assert.has_error(function() conc.sleep("x") end)
    assert.has_error(function() conc.sleep(0 / 0) end)
    assert.is_true(conc.sleep(0))
    assert.is_true(conc.sleep(-1))
  end)

  it("conc.after receives once, not before the time", function()
    local t0 = conc.now()
    local ch = conc.after(0.05)
    local v, ok = ch:recv()
    local dt = conc.now() - t0
    assert.is_true(ok)
    assert.is_true(v >= t0 + 0.05 and v <= conc.now())
    assert.is_true(dt >= 0.05, "after " .. dt)
    assert.is_true(dt < 5)
    assert.are.same({nil, nil, "timeout"}, {ch:recv(0.05)})
  end)

  it("timeout with select: the chapter's idiom, main and worker", function()
    local never = conc.chan()
    local i = conc.select{{"recv", never}, {"recv", conc.after(0.02)}}
    assert.are.equal(2, i)
    local h = conc.go(function(c)
      local j = conc.select{{"recv", c}, {"recv", conc.after(0.02)}}
      return j
    end, never)
    assert.are.same({true, 2}, {h:join()})
  end)

  it("many afters fire in deadline order", function()
    -- Deadlines t0 + 0.25 s + k * 5 ms, made latest first: each delay
    -- counts from t0, not from its own creation (under valgrind making
    -- ten took longer than 5 ms, which put two deadlines out of order),
    -- and all are still ahead when made (an after already overdue is due
    -- when made, as Go's: under Helgrind the last made read latest).
    local chans, t0 = {}, conc.now()
    for k = 10, 1, -1 do
      chans[k] = conc.after(t0 + 0.25 + k * 0.005 - conc.now())
    end
    local last = 0
    for k = 1, 10 do
      local v = chans[k]:recv()
      assert.is_true(v >= last)
      last = v
    end
  end)

  it("a ticker ticks repeatedly and stops", function()
    local tk = conc.ticker(0.01)
    local prev = conc.now()
    for _ = 1, 5 do
      local v = tk.C:recv()
      assert.is_true(v >= prev - 0.011)
      prev = v
    end
    assert.is_true(tk:stop())
    assert.is_false(tk:stop())
    assert.are.same({nil, nil, "timeout"}, {tk.C:recv(0.05)})
  end)

  it("a ticker drops ticks a slow reader misses", function()
    local tk = conc.ticker(0.005)
    conc.sleep(0.06)
    -- about 12 ticks came; one is there (a second if the next tick
    -- falls due while this loop runs), the others were dropped
    local got = 0
    while tk.C:try_recv() do got = got + 1 end
    assert.is_true(got == 1 or got == 2, "received " .. got)
    tk:stop()
  end)

  it("ticker reset changes the period", function()
    local tk = conc.ticker(10)
    assert.is_true(tk:reset(0.01))
    local t0 = conc.now()
    tk.C:recv()
    tk.C:recv()
    assert.is_true(conc.now() - t0 < 5)
    tk:stop()
  end)

  it("a ticker with a non-positive interval raises", function()
    assert.has_error(function() conc.ticker(0) end)
    assert.has_error(function() conc.ticker(-1) end)
    local tk = conc.ticker(1)
    assert.has_error(function() tk:reset(0) end)
    tk:stop()
  end)

  it("timer stop before firing: true, and nothing is received", function()
    local t = conc.timer(0.02)
    assert.is_true(t:stop())
    assert.are.same({nil, nil, "timeout"}, {t.C:recv(0.05)})
    assert.is_false(t:stop())
  end)

  it("timer stop after firing but before receiving drops the value",
    function()
      local t = conc.timer(0.001)
      conc.sleep(0.02)  -- it has fired: its value waits in C
      assert.is_true(t:stop())  -- Go 1.23: no stale value after Stop
      assert.are.same({nil, nil, "would block"}, {t.C:try_recv()})
    end)

  it("timer stop after the value was received: false", function()
    local t = conc.timer(0.001)
    t.C:recv()
    assert.is_false(t:stop())
  end)

  it("timer reset re-arms a fired or stopped timer", function()
    local t = conc.timer(0.001)
    t.C:recv()
    local t0 = conc.now()  -- before the reset: it fires 10 ms after that
    assert.is_false(t:reset(0.01))
    t.C:recv()
    assert.is_true(conc.now() - t0 >= 0.0099)  -- (float rounding)
    t:stop()
    assert.is_false(t:reset(0.001))
    assert.is_true(select(2, t.C:recv()))
    assert.is_true(conc.timer(5):reset(5))
  end)

  it("timer reset leaves no stale value from the earlier schedule", function()
    local t = conc.timer(0.001)
    conc.sleep(0.02)
    t:reset(10)
    assert.are.same({nil, nil, "would block"}, {t.C:try_recv()})
    t:stop()
  end)

  it("a due timer's value is there for a receive that does not wait (Go 1.23)",
    function()
      -- Go 1.23 runs a due timer when its channel is received from: a
      -- poll after the deadline always finds the value, even before the
      -- timer thread has woken; the channel reads as unbuffered and empty
      local function polls(n)
        for _ = 1, n do
          local t = conc.timer(0)
          assert(#t.C == 0 and t.C:cap() == 0, "not read as unbuffered")
          local v, ok = t.C:try_recv()
          assert(ok and type(v) == "number", "timer(0) not ready")
          assert(conc.select{{"recv", conc.after(0)}, default = true} == 1,
            "after(0) not ready")
          assert(select(3, t.C:try_recv()) == "would block", "two values")
          assert(t:stop() == false, "received, yet active")
        end
        local tk = conc.ticker(0.001)
        for _ = 1, 20 do
          conc.sleep(0.002)
          assert(tk.C:try_recv(), "a due tick not ready")
        end
        tk:stop()
        return n
      end
      assert.are.equal(2000, polls(2000))
      local hs = {}
      for i = 1, 4 do hs[i] = conc.go(polls, 500) end
      for i = 1, 4 do assert.are.same({true, 500}, {hs[i]:join()}) end
    end)

  it("a tick's value is the time it was due, and a late ticker keeps " ..
     "its grid (Go 1.23)", function()
    -- The process is stopped (SIGSTOP) past several ticks; the late
    -- firing said when it ran (off the grid), and the ticker went on
    -- from there. Every value is now start + k x period, exactly.
    local out, rc = require("support").run_script([[
      local conc = require("conc")
      local pid = io.open("/proc/self/stat"):read("n")
      local tk = conc.ticker(0.05)
      local v = {tk.C:recv()}
      os.execute(("(sleep 0.01; kill -STOP %d; sleep 0.3; kill -CONT %d) &")
        :format(pid, pid))
      conc.sleep(0.5)
      for i = 2, 4 do v[i] = tk.C:recv() end
      tk:stop()
      for i = 2, 4 do
        local k = (v[i] - v[1]) / 0.05
        assert(k > 0 and math.abs(k - math.floor(k + 0.5)) < 1e-6,
          ("value %d is %.6f periods after the first"):format(i, k))
      end
      print("on the grid")
    ]], 60)
    assert.are.equal(0, rc, out)
    assert.matches("on the grid", out)
  end)

  it("a timer set for zero or less is due when it is set: that is its value",
    function()
      -- Its due time was conc_deadline_in's "no wait", 0: the value 0.0
      -- (Go's when(d) is now for d <= 0).
      for _, d in ipairs({0, -1, -1e-9, -math.huge}) do
        local t0 = conc.now()
        local a, t = conc.after(d):recv(), conc.timer(d).C:recv()
        local t1 = conc.now()
        assert.is_true(a >= t0 and a <= t1, d .. ": " .. a)
        assert.is_true(t >= t0 and t <= t1, d .. ": " .. t)
        local timer = conc.timer(3600)
        t0 = conc.now()
        assert.is_true(timer:reset(d))
        local v = timer.C:recv()
        assert.is_true(v >= t0 and v <= conc.now(), d .. ": " .. v)
      end
    end)

  it("a timer can be passed to a worker", function()
    local t = conc.timer(0.01)
    local h = conc.go(function(tm) return (tm.C:recv()) ~= nil end, t)
    assert.are.same({true, true}, {h:join()})
  end)

  it("a collected timer releases what it holds and never fires", function()
    for _ = 1, 200 do conc.timer(0.001) end
    collectgarbage()
    collectgarbage()
    local t = conc.timer(0.01)
    assert.is_true(select(2, t.C:recv()))
  end)
end)
