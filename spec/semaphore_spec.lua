local conc = require("conc")
local support = require("support")

describe("conc.semaphore", function()
  it("acquire, try_acquire and release count weight", function()
    local s = conc.semaphore(3)
    assert.are.equal(3, s:size())
    assert.is_true(s:acquire())
    assert.is_true(s:acquire(2))
    assert.are.equal(3, s:held())
    assert.is_false(s:try_acquire())
    s:release(2)
    assert.is_true(s:try_acquire(2))
    assert.is_false(s:try_acquire(4))  -- more than the size: false, as x/sync
    assert.is_true(s:acquire(0))        -- weight 0 always fits
    s:release(3)
    assert.are.equal(0, s:held())
  end)

  it("acquire with a timeout or a context fails with a reason", function()
    local s = conc.semaphore(1)
    assert.is_true(s:acquire())
    local t0 = conc.now()
    assert.are.same({nil, "timeout"}, {s:acquire(1, 0.05)})
    assert.is_true(conc.now() - t0 >= 0.04)
    local ctx = conc.with_timeout(conc.background(), 0.02)
    assert.are.same({nil, "context deadline exceeded"}, {s:acquire(1, ctx)})
    local c2, cancel = conc.with_cancel(conc.background())
    cancel()
    assert.are.same({nil, "context canceled"}, {s:acquire(c2)})
    s:release()
    -- a canceled context wins even when the weight is free (x/sync)
    assert.are.same({nil, "context canceled"}, {s:acquire(1, c2)})
    assert.are.equal(0, s:held())
  end)

  it("takes Go's order too: acquire(ctx, w), guard(ctx, w)", function()
    -- x/sync's Acquire(ctx, n): the weight after the context counts
    local s, bg = conc.semaphore(3), conc.background()
    assert.is_true(s:acquire(bg, 3))
    assert.are.equal(3, s:held())
    s:release(3)
    assert.is_true(s:acquire(bg))    -- no weight: 1
    assert.are.equal(1, s:held())
    s:release()
    do
      local _ <close> = s:guard(bg, 2)
      assert.are.equal(2, s:held())
    end
    assert.are.equal(0, s:held())
    assert.has_error(function() s:acquire(bg, 5) end,
      "conc.semaphore:acquire: semaphore: weight 5 exceeds the size 3")
    assert.has_error(function() s:acquire(bg, "x") end,
      "conc.semaphore:acquire: bad argument #2 (number expected, got string)")
    assert.has_error(function() s:guard(bg, -1) end,
      "conc.semaphore:guard: bad argument #2 (weight must not be negative)")
    assert.is_true(s:acquire(2))
    local c, cancel = conc.with_timeout(bg, 0.02)
    assert.are.same({nil, "context deadline exceeded"}, {s:acquire(c, 2)})
    cancel()
    assert.are.equal(2, s:held())
  end)

  it("misuse raises in Go's words", function()
    local s = conc.semaphore(2)
    assert.has_error(function() s:release() end,
      "conc.semaphore:release: semaphore: released more than held")
    s:acquire()
    assert.has_error(function() s:release(2) end,
      "conc.semaphore:release: semaphore: released more than held")
    assert.are.equal(1, s:held())  -- left as it was
    assert.has_error(function() s:acquire(3) end,
      "conc.semaphore:acquire: semaphore: weight 3 exceeds the size 2")
    assert.has_error(function() s:acquire(-1) end)
    assert.has_error(function() conc.semaphore(-1) end)
    assert.has_error(function() conc.semaphore("x") end)
    assert.has_error(function() s.acquire(conc.mutex()) end)
  end)

  it("large acquire does not starve behind small ones", function()
    local s = conc.semaphore(2)
    s:acquire(1)
    local order = conc.chan(10)
    local queued = conc.chan(10)
    conc.go(function(s, order, queued)
      queued:send("big")
      assert(s:acquire(2))
      order:send("big")
      s:release(2)
    end, s, order, queued)
    queued:recv()
    -- wait until the big request is queued: small ones may not pass it
    while s:try_acquire(1) do s:release(1); conc.sleep(0.001) end
    conc.go(function(s, order)
      assert(s:acquire(1))
      order:send("small")
      s:release(1)
    end, s, order)
    conc.sleep(0.02)
    assert.are.equal(0, #order)  -- one unit is free, but big is first
    s:release(1)
    assert.are.equal("big", order:recv())
    assert.are.equal("small", order:recv())
  end)

  it("a canceled waiter at the head lets the ones behind it go",
    function()
      local s = conc.semaphore(4)
      s:acquire(2)
      local ctx, cancel = conc.with_cancel(conc.background())
      local big = conc.go(function(s, ctx) return s:acquire(4, ctx) end,
        s, ctx)
      while s:try_acquire(1) do s:release(1); conc.sleep(0.001) end
      local small = conc.go(function(s) return s:acquire(2) end, s)
      conc.sleep(0.02)
      assert.are.equal("running", small:status())
      cancel()
      assert.are.same({true, nil, "context canceled"}, {big:join()})
      assert.are.same({true, true}, {small:join()})
      assert.are.equal(4, s:held())
    end)

  it("guard releases at the end of the scope, also on error", function()
    local s = conc.semaphore(3)
    do
      local _ <close> = s:guard(2)
      assert.are.equal(2, s:held())
    end
    assert.are.equal(0, s:held())
    assert.has_error(function()
      local _ <close> = s:guard()
      error("inside")
    end)
    assert.are.equal(0, s:held())
    s:acquire(3)
    assert.are.same({nil, "timeout"}, {s:guard(1, 0.01)})
    s:release(3)
  end)

  it("N workers never hold more than the size; every job runs once",
    function()
      local s = conc.semaphore(3)
      local inside, max, jobs = conc.atomic(), conc.atomic(), conc.map()
      local wg = conc.waitgroup()
      for i = 1, 16 do
        wg:go(function(s, inside, max, jobs, i)
          for j = 1, 50 do
            local w = (i + j) % 2 + 1
            local _ <close> = s:guard(w)
            local n = inside:add(w)
            repeat
              local m = max:load()
            until n <= m or max:compare_and_swap(m, n)
            jobs:store(i * 1000 + j, true)
            inside:add(-w)
          end
        end, s, inside, max, jobs, i)
      end
      assert.is_true(wg:wait(30))
      assert.are.equal(16 * 50, jobs:len())
      assert.is_true(max:load() <= 3)
      assert.are.equal(0, s:held())
    end)

  it("a semaphore crosses states by reference", function()
    local s = conc.semaphore(5)
    local ch = conc.chan(1)
    ch:send(s)
    local s2 = ch:recv()
    assert.are.equal(s, s2)
    support.join_ok(conc.go(function(s) assert(s:acquire(4)) end, s))
    assert.are.equal(4, s:held())
    assert.is_false(s2:try_acquire(2))
    s2:release(4)
  end)

  it("a wait is named for conc.workers and deadlock detection", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local s = conc.semaphore(1)
      s:acquire()
      s:acquire()
    ]], 10)
    assert.are.equal(2, rc)
    assert.matches("deadlock", out)
    assert.matches("semaphore acquire", out)
  end)
end)
