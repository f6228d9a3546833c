local conc = require("conc")
local support = require("support")

-- A cell that holds one token: inside a critical section the token must
-- always be there to take (try_recv), or mutual exclusion failed.
local function critical_increment(cell)
  local v, ok = cell:try_recv()
  assert(ok, "two holders in the critical section")
  assert(cell:try_send(v + 1))
end

describe("conc.waitgroup", function()
  it("wait returns once the counter is back to zero", function()
    local wg = conc.waitgroup()
    local results = conc.chan(10)
    wg:add(10)
    for i = 1, 10 do
      conc.go(function(w, r, n) r:send(n); w:done() end, wg, results, i)
    end
    assert.is_true(wg:wait())
    assert.are.equal(10, #results)
    assert.are.equal(0, wg:count())
  end)

  it("wait on a zero counter returns at once; the group is reusable",
    function()
      local wg = conc.waitgroup()
      assert.is_true(wg:wait())
      for _ = 1, 3 do
        wg:add(2)
        conc.go(function(w) w:done(); w:done() end, wg)
        assert.is_true(wg:wait())
      end
    end)

  it("wait with a timeout or a context", function()
    local wg = conc.waitgroup()
    wg:add()
    assert.are.same({nil, "timeout"}, {wg:wait(0.02)})
    local ctx = conc.with_timeout(conc.background(), 0.02)
    assert.are.same({nil, "context deadline exceeded"}, {wg:wait(ctx)})
    wg:done()
    assert.is_true(wg:wait(0))
  end)

  it("a negative counter raises Go's panic message", function()
    local wg = conc.waitgroup()
    assert.has_error(function() wg:done() end,
      "conc.waitgroup:done: sync: negative WaitGroup counter")
    assert.has_error(function() wg:add(-2) end,
      "conc.waitgroup:add: sync: negative WaitGroup counter")
    assert.are.equal(0, wg:count())  -- unchanged
    assert.has_error(function() wg:add("x") end)
  end)

  it("many waiters are all released", function()
    local wg = conc.waitgroup()
    wg:add(1)
    local hs = {}
    for i = 1, 20 do hs[i] = conc.go(function(w) return w:wait() end, wg) end
    wg:done()
    for i = 1, 20 do assert.are.same({true, true}, {hs[i]:join()}) end
  end)
end)

describe("conc.mutex", function()
  it("lock, unlock, try_lock", function()
    local mu = conc.mutex()
    assert.is_true(mu:try_lock())
    assert.is_false(mu:try_lock())
    mu:unlock()
    mu:lock()
    assert.is_false(mu:try_lock())
    mu:unlock()
  end)

  it("unlock of an unlocked mutex raises", function()
    assert.has_error(function() conc.mutex():unlock() end,
      "conc.mutex:unlock: sync: unlock of unlocked mutex")
  end)

  it("protects a shared counter: 4 workers x 2000 increments", function()
    local mu, cell, wg = conc.mutex(), conc.chan(1), conc.waitgroup()
    cell:send(0)
    wg:add(4)
    local hs = {}
    for i = 1, 4 do
      hs[i] = conc.go(function(m, c, w, inc)
        for _ = 1, 2000 do
          m:lock()
          inc(c)
          m:unlock()
        end
        w:done()
      end, mu, cell, wg, critical_increment)
    end
    wg:wait()
    for i = 1, 4 do support.join_ok(hs[i]) end
    assert.are.equal(8000, cell:recv())
  end)

  it("guard unlocks at the end of the block, also on error", function()
    local mu = conc.mutex()
    do
      local _ <close> = mu:guard()
      assert.is_false(mu:try_lock())
    end
    assert.is_true(mu:try_lock())
    mu:unlock()
    local ok = pcall(function()
      local _ <close> = mu:guard()
      error("inside")
    end)
    assert.is_false(ok)
    assert.is_true(mu:try_lock())
    mu:unlock()
  end)

  it("a guard's errors name the guard", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      conc.set_deadlock_mode("error")
      local mu, rw = conc.mutex(), conc.rwmutex()
      mu:lock()
      print(select(2, pcall(function() local _ <close> = mu:guard() end)))
      rw:lock()
      print(select(2, pcall(function() local _ <close> = rw:guard() end)))
      print(select(2, pcall(function() local _ <close> = rw:rguard() end)))
      print(select(2, pcall(function() mu:lock() end)))
    ]])
    assert.are.equal(0, rc, out)
    local names = {}
    for name in out:gmatch("(conc%.[%w:]+): all workers are asleep") do
      names[#names + 1] = name
    end
    assert.are.same({"conc.mutex:guard", "conc.rwmutex:guard",
                     "conc.rwmutex:rguard", "conc.mutex:lock"}, names, out)
  end)

  it("a worker's guard works even if the worker never required conc",
    function()
      local mu = conc.mutex()
      local h = conc.go(function(m)
        local _ <close> = m:guard()
        return m:try_lock()
      end, mu)
      assert.are.same({true, false}, {h:join()})
      assert.is_true(mu:try_lock())
    end)
end)

describe("conc.rwmutex", function()
  it("many readers at once, one writer alone", function()
    local rw = conc.rwmutex()
    rw:rlock()
    assert.is_true(rw:try_rlock())
    assert.is_false(rw:try_lock())
    rw:runlock()
    rw:runlock()
    assert.is_true(rw:try_lock())
    assert.is_false(rw:try_rlock())
    rw:unlock()
  end)

  it("misuse raises Go's messages", function()
    local rw = conc.rwmutex()
    assert.has_error(function() rw:unlock() end,
      "conc.rwmutex:unlock: sync: Unlock of unlocked RWMutex")
    assert.has_error(function() rw:runlock() end,
      "conc.rwmutex:runlock: sync: RUnlock of unlocked RWMutex")
  end)

  it("writer preference: a waiting writer blocks new readers", function()
    local rw = conc.rwmutex()
    rw:rlock()
    local started = conc.chan()
    local h = conc.go(function(r, s)
      s:send(true)
      r:lock()   -- waits for the reader
      r:unlock()
    end, rw, started)
    started:recv()
    -- wait until the writer is queued: then try_rlock must fail
    local t0 = conc.now()
    while rw:try_rlock() do
      rw:runlock()
      assert.is_true(conc.now() - t0 < 5, "writer never queued")
      conc.sleep(0.001)
    end
    rw:runlock()
    assert.is_true((h:join()))
  end)

  it("protects a counter with writers while readers check it", function()
    local rw, cell, wg = conc.rwmutex(), conc.chan(1), conc.waitgroup()
    cell:send(0)
    wg:add(4)
    local hs = {}
    for i = 1, 2 do
      hs[i] = conc.go(function(r, c, w, inc)
        for _ = 1, 2000 do
          local _ <close> = r:guard()
          inc(c)
        end
        w:done()
      end, rw, cell, wg, critical_increment)
    end
    for i = 3, 4 do
      hs[i] = conc.go(function(r, c, w)
        local bad = 0
        for _ = 1, 2000 do
          local _ <close> = r:rguard()
          if #c ~= 1 then bad = bad + 1 end  -- a writer is inside
        end
        w:done()
        return bad
      end, rw, cell, wg)
    end
    wg:wait()
    support.join_ok(hs[1])
    support.join_ok(hs[2])
    assert.are.equal(0, support.join_ok(hs[3]))
    assert.are.equal(0, support.join_ok(hs[4]))
    assert.are.equal(4000, cell:recv())
  end)
end)

describe("conc.cond", function()
  it("the chapter's queue between workers: every item once", function()
    local mu = conc.mutex()
    local cond = conc.cond(mu)
    local items = conc.chan(1000)  -- the queue's storage (under mu)
    local consumers = {}
    for k = 1, 3 do
      consumers[k] = conc.go(function(c, q)
        local got = {}
        while true do
          c.L:lock()
          while #q == 0 do c:wait() end
          local item = q:try_recv()
          c.L:unlock()
          if item == "stop" then return got end
          got[#got + 1] = item
        end
      end, cond, items)
    end
    for i = 1, 300 do
      mu:lock()
      items:send(i)
      cond:signal()
      mu:unlock()
    end
    for _ = 1, 3 do
      mu:lock()
      items:send("stop")
      cond:signal()
      mu:unlock()
    end
    local seen, n = {}, 0
    for k = 1, 3 do
      for _, v in ipairs(support.join_ok(consumers[k])) do
        assert.is_nil(seen[v])
        seen[v] = true
        n = n + 1
      end
    end
    assert.are.equal(300, n)
  end)

  it("broadcast wakes every waiter", function()
    local mu = conc.mutex()
    local cond = conc.cond(mu)
    local flag = conc.chan(1)
    local ready = conc.chan(10)
    local hs = {}
    for i = 1, 10 do
      hs[i] = conc.go(function(c, f, r)
        c.L:lock()
        r:send(true)
        while #f == 0 do c:wait() end
        c.L:unlock()
        return true
      end, cond, flag, ready)
    end
    for _ = 1, 10 do ready:recv() end
    mu:lock()
    flag:send(true)
    cond:broadcast()
    mu:unlock()
    for i = 1, 10 do assert.are.same({true, true}, {hs[i]:join()}) end
  end)

  it("wait without holding the lock raises", function()
    assert.has_error(function() conc.cond(conc.mutex()):wait() end,
      "conc.cond:wait: sync: unlock of unlocked mutex")
    assert.has_error(function() conc.cond({}) end)
  end)
end)

describe("conc.once", function()
  it("runs fn exactly once under a stampede; all see its result", function()
    local once, runs = conc.once(), conc.chan(100)
    local start = conc.chan()
    local hs = {}
    for i = 1, 20 do
      hs[i] = conc.go(function(o, r, s)
        s:recv()
        return o:call(function()
          r:send(conc.id())
          conc.sleep(0.01)  -- give the others time to pile up
          return {who = conc.id()}
        end)
      end, once, runs, start)
    end
    start:close()
    local first
    for i = 1, 20 do
      local ok, res = hs[i]:join()
      assert.is_true(ok)
      first = first or res.who
      assert.are.equal(first, res.who)
    end
    assert.are.equal(1, #runs)
    assert.are.same({first, true}, {runs:recv()})
  end)

  it("an error in fn is raised to its caller and to later callers", function()
    local once = conc.once()
    local ok, err = pcall(once.call, once, function() error({code = 1}) end)
    assert.is_false(ok)
    assert.are.same({code = 1}, err)
    local ok2, err2 = pcall(once.call, once, function() return "never" end)
    assert.is_false(ok2)
    assert.are.same({code = 1}, err2)
    local h = conc.go(function(o)
      return pcall(o.call, o, function() end)
    end, once)
    local _, wok, werr = h:join()
    assert.is_false(wok)
    assert.are.same({code = 1}, werr)
  end)

  it("a runner whose coroutine is closed or dropped inside fn finishes "
    .. "the once (Go: f that exits by Goexit)", function()
    local gone = "conc.once:call: fn did not return (its coroutine was "
      .. "closed or collected)"
    for _, ending in ipairs({"close", "drop"}) do
      local once = conc.once()
      local runner = support.suspended(function()
        return once:call(function() coroutine.yield("inside") end)
      end, "inside")
      -- a caller in a task waits for the runner meanwhile
      local waiter = conc.go(function(o)
        return pcall(o.call, o, function() return "not me" end)
      end, once)
      support.abandon(runner, ending)
      assert.is_true(waiter:wait(10), "the waiter still waits")
      local ok, wok, werr = waiter:join()
      assert.is_true(ok)
      assert.are.same({false, gone}, {wok, werr})
      assert.are.same({false, gone},
        {pcall(once.call, once, function() return "never" end)})
    end
    -- collected, then brought back by a finalizer and resumed: fn returns,
    -- but the once is done already and stays as it was
    local once = conc.once()
    local revived = support.revived(function()
      return once:call(function() coroutine.yield("in") return "late" end)
    end)
    assert.are.same({true, "late"}, {coroutine.resume(revived)})
    assert.are.same({false, gone},
      {pcall(once.call, once, function() return "never" end)})
  end)

  it("returns several results; the runner gets its own values", function()
    local once = conc.once()
    local t = {}
    local a, b = once:call(function() return t, 2 end)
    assert.is_true(rawequal(a, t))
    assert.are.equal(2, b)
    local c, d = once:call(function() return 0 end)
    assert.are.same({}, c)
    assert.are.equal(2, d)
  end)
end)

describe("conc.pool", function()
  it("get returns a put object or a new one", function()
    local made = 0
    local pool = conc.pool{new = function() made = made + 1; return {} end}
    local a = pool:get()
    assert.are.equal(1, made)
    pool:put(a)
    assert.is_true(rawequal(a, pool:get()))
    pool:get()
    assert.are.equal(2, made)
    assert.is_nil(conc.pool():get())
    assert.has_error(function() conc.pool{new = 1} end)
  end)

  it("refuses to travel to another worker, naming itself", function()
    local pool = conc.pool{new = function() return {} end}
    local why = "a conc.pool holds values of one lua_State: make one in " ..
                "each worker"
    local ok, err = pcall(conc.go, function() return pool:get() end)
    assert.is_false(ok)
    assert.matches("upvalue 'pool'", err, 1, true)
    assert.matches(why, err, 1, true)
    local c = conc.chan(1)
    ok, err = pcall(c.send, c, {pool})
    assert.is_false(ok)
    assert.matches(why, err, 1, true)
    assert.are.equal(0, #c)
  end)
end)
