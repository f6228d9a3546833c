local conc = require("conc")
local support = require("support")

describe("conc.limiter", function()
  it("starts full, allows the burst, then refills at its rate", function()
    local lim = conc.limiter(20, 5)
    assert.are.equal(20, lim:limit())
    assert.are.equal(5, lim:burst())
    assert.is_true(lim:tokens() > 4.99)
    for _ = 1, 5 do assert.is_true(lim:allow()) end
    assert.is_false(lim:allow())
    conc.sleep(0.06) -- a token per 50 ms
    assert.is_true(lim:allow())
    assert.is_true(lim:tokens() < 1)
  end)

  it("an idle bucket refills to exactly its burst (x/time/rate's advance)",
    function()
      -- The elapsed time was capped at what fills the bucket, truncated to
      -- whole nanoseconds: it never read full (0.999999999), and one that
      -- fills in under a nanosecond never refilled (0, then -5).
      local a = conc.limiter(3, 1)
      assert.is_true(a:allow())
      local b = conc.limiter(1e10, 1)
      assert.is_true(b:allow())
      conc.sleep(0.5)
      assert.are.equal(1, a:tokens())
      assert.are.equal(a:burst(), a:tokens())
      assert.are.equal(1, b:tokens())
      for _ = 1, 5 do b:allow() end
      conc.sleep(0.01)
      assert.are.equal(1, b:tokens())
    end)

  it("allow takes n tokens or none", function()
    local lim = conc.limiter(0, 5) -- rate 0: never refills
    assert.is_false(lim:allow(6))
    assert.is_true(lim:allow(3))
    assert.is_false(lim:allow(3))
    assert.is_true(lim:allow(2))
    assert.is_true(lim:allow(0))
    assert.is_false(lim:allow())
  end)

  it("math.huge allows everything, whatever the burst", function()
    local lim = conc.limiter(math.huge, 0)
    assert.are.equal(math.huge, lim:limit())
    for _ = 1, 100 do assert.is_true(lim:allow(1000)) end
    assert.is_true(lim:wait(1000000))
  end)

  it("wait paces events at the rate", function()
    local lim = conc.limiter(50, 1) -- one per 20 ms
    local t0 = conc.now()
    for _ = 1, 6 do assert.is_true(lim:wait()) end
    assert.is_true(conc.now() - t0 >= 0.095) -- the first free, then 5 x 20 ms
  end)

  it("wait fails at once, taking nothing, when it cannot succeed in time",
    function()
    local lim = conc.limiter(1, 2)
    local ok, err = lim:wait(3)
    assert.is_nil(ok)
    assert.are.equal("rate: Wait(n=3) exceeds limiter's burst 2", err)
    assert.is_true(lim:allow(2))
    local t0 = conc.now()
    ok, err = lim:wait(1, 0.05) -- the token comes in ~1 s
    assert.is_nil(ok)
    assert.are.equal("timeout", err)
    ok, err = lim:wait(nil, 0.05)
    assert.is_nil(ok)
    assert.are.equal("timeout", err)
    local ctx, cancel = conc.with_timeout(conc.background(), 0.05)
    ok, err = lim:wait(ctx)
    assert.is_nil(ok)
    assert.are.equal("rate: Wait(n=1) would exceed context deadline", err)
    cancel()
    ok, err = lim:wait(1, ctx)
    assert.is_nil(ok)
    assert.are.equal("context canceled", err)
    assert.is_true(conc.now() - t0 < 0.5)
    assert.is_true(lim:tokens() > -0.5) -- nothing was reserved
  end)

  it("wait with a timeout of 0 is allow", function()
    local lim = conc.limiter(1, 1)
    assert.is_true(lim:wait(1, 0))
    assert.are.equal("timeout", select(2, lim:wait(1, 0)))
  end)

  it("a wait canceled by its context gives its tokens back", function()
    local lim = conc.limiter(0.5, 1) -- a token every 2 s
    assert.is_true(lim:allow())
    local ctx, cancel = conc.with_cancel(conc.background())
    local h = conc.go(function(l, c)
      return l:wait(1, c)
    end, lim, ctx)
    -- the worker has reserved once the bucket is below zero
    while lim:tokens() > -0.5 do conc.sleep(0.001) end
    local listed
    for _, w in ipairs(conc.workers()) do
      if w.id == h:id() then listed = w.waiting_in end
    end
    assert.are.equal("limiter wait", listed)
    cancel()
    local ok, r1, r2 = h:join()
    assert.is_true(ok)
    assert.is_nil(r1)
    assert.are.equal("context canceled", r2)
    assert.is_true(lim:tokens() > -0.5)
  end)

  it("reserve takes tokens ahead and says how long to wait", function()
    local lim = conc.limiter(10, 2)
    local a = lim:reserve(2)
    assert.is_true(a:ok())
    assert.are.equal(0, a:delay())
    local b = lim:reserve()
    assert.is_true(b:ok())
    assert.is_true(b:delay() > 0.08 and b:delay() <= 0.1)
    local c = lim:reserve()
    assert.is_true(c:delay() > 0.18 and c:delay() <= 0.2)
    local big = lim:reserve(3)
    assert.is_false(big:ok())
    assert.are.equal(math.huge, big:delay())
    big:cancel() -- nothing to give back
    -- b's token is counted on by c: cancelling b gives nothing back;
    -- cancelling c (the latest) gives one back, once
    local before = lim:tokens()
    b:cancel()
    assert.is_true(lim:tokens() - before < 0.05)
    c:cancel()
    c:cancel()
    local after = lim:tokens()
    assert.is_true(after - before > 0.95 and after - before < 1.05)
    assert.matches("^conc%.reservation", tostring(a))
  end)

  it("set_limit and set_burst change it from now on", function()
    local lim = conc.limiter(1, 1)
    assert.is_true(lim:allow())
    assert.is_false(lim:allow())
    lim:set_limit(math.huge)
    assert.are.equal(math.huge, lim:limit())
    assert.is_true(lim:allow(10))
    lim:set_limit(0)
    lim:set_burst(3)
    assert.are.equal(3, lim:burst())
    assert.are.equal(0, lim:limit())
    -- rate 0 (x/time/rate's special case): events spend the burst itself
    assert.is_true(lim:allow(3))
    assert.are.equal(0, lim:burst())
    assert.is_false(lim:allow())
    assert.are.same({nil, "rate: Wait(n=1) exceeds limiter's burst 0"},
      {lim:wait(1)})  -- at once, not a wait of 292 years
    local r = lim:reserve(1)
    assert.is_false(r:ok())
    lim:set_burst(2)
    r = lim:reserve(2)
    assert.is_true(r:ok())
    assert.are.equal(0, r:delay())
    r:cancel()  -- as Go's: its time to act has passed, nothing back
    assert.are.equal(0, lim:burst())
  end)

  it("N workers share one bucket: exactly the burst is allowed", function()
    local lim = conc.limiter(0, 1000)
    local hs = {}
    for i = 1, 8 do
      hs[i] = conc.go(function(l)
        local n = 0
        while l:allow() do n = n + 1 end
        return n
      end, lim)
    end
    local total = 0
    for _, h in ipairs(hs) do total = total + support.join_ok(h) end
    assert.are.equal(1000, total)
    assert.is_false(lim:allow())
  end)

  it("N workers waiting are paced together", function()
    local lim = conc.limiter(100, 1) -- one per 10 ms
    local t0 = conc.now()
    local hs = {}
    for i = 1, 4 do
      hs[i] = conc.go(function(l)
        local n = 0
        for _ = 1, 5 do if l:wait() then n = n + 1 end end
        return n
      end, lim)
    end
    local total = 0
    for _, h in ipairs(hs) do total = total + support.join_ok(h) end
    assert.are.equal(20, total)
    assert.is_true(conc.now() - t0 >= 0.185) -- 19 x 10 ms after the first
  end)

  it("a reservation travels by reference", function()
    local lim = conc.limiter(0, 1)
    local r = lim:reserve()
    assert.is_true(r:ok())
    local ch = conc.chan(1)
    ch:send(r)
    support.join_ok(conc.go(function(c)
      local res = c:recv()
      res:cancel() -- too late: its time to act has passed
    end, ch))
    assert.is_false(lim:allow())
    local later = conc.limiter(1, 1)
    assert.is_true(later:allow())
    local r2 = later:reserve()
    support.join_ok(conc.go(function(res) res:cancel() end, r2))
    assert.is_true(later:tokens() > -0.5)
  end)

  it("takes Go's order too: wait(ctx, n) is WaitN(ctx, n)", function()
    local lim, bg = conc.limiter(1, 5), conc.background()
    assert.is_true(lim:wait(bg, 5))
    assert.is_true(lim:tokens() < 1)  -- all five taken, not one
    assert.are.same({nil, "rate: Wait(n=99) exceeds limiter's burst 5"},
      {lim:wait(bg, 99)})
    local c, cancel = conc.with_timeout(bg, 0.05)
    assert.are.same({nil, "rate: Wait(n=3) would exceed context deadline"},
      {lim:wait(c, 3)})
    cancel()
    assert.has_error(function() lim:wait(bg, -1) end,
      "conc.limiter:wait: bad argument #2 (n must be >= 0)")
  end)

  it("refuses bad arguments", function()
    local cases = {
      {function() return conc.limiter(-1, 1) end, "rate must be >= 0"},
      {function() return conc.limiter(0 / 0, 1) end, "rate must be >= 0"},
      {function() return conc.limiter(1, -1) end, "burst must be >= 0"},
      {function() return conc.limiter(1, 1.5) end, "number has no integer"},
      {function() return conc.limiter(1) end, "number expected"},
      {function() return conc.limiter(1, 1):allow(-1) end, "n must be >= 0"},
      {function() return conc.limiter(1, 1):wait(0.5) end,
       "number has no integer"},
      {function() return conc.limiter(1, 1):wait(1, "x") end,
       "number of seconds or conc.ctx"},
      {function() return conc.limiter(1, 1):set_limit(-2) end,
       "rate must be >= 0"},
      {function() return conc.limiter(1, 1):set_burst(-2) end,
       "burst must be >= 0"},
      {function() return conc.limiter(1, 1).allow(conc.mutex()) end,
       "conc.limiter expected"},
    }
    for i, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.is_false(ok, "case " .. i)
      assert.matches(c[2], err, 1, true)
    end
  end)
end)
