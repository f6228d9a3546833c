local conc = require("conc")
local support = require("support")

describe("context", function()
  it("background is never canceled", function()
    local bg = conc.background()
    assert.is_nil(bg:err())
    assert.are.same({nil, false}, {bg:deadline()})
    assert.are.equal("default",
                     conc.select{{"recv", bg:done()}, default = true})
    assert.is_true(conc.background() == bg)
    assert.is_true(conc.todo() == bg)
  end)

  it("with_cancel: cancel closes done and sets err; idempotent", function()
    local ctx, cancel = conc.with_cancel(conc.background())
    assert.is_nil(ctx:err())
    cancel()
    assert.are.equal("context canceled", ctx:err())
    assert.are.same({nil, false}, {ctx:done():recv()})
    cancel()
    cancel()
    assert.are.equal("context canceled", ctx:err())
    assert.are.equal("context canceled", ctx:cause())
  end)

  it("canceling a parent cancels every descendant, not the reverse",
    function()
      local root, cancel_root = conc.with_cancel(conc.background())
      local a, cancel_a = conc.with_cancel(root)
      local b = conc.with_value(a, "k", "v")
      local c = conc.with_timeout(b, 100)
      local sibling = conc.with_cancel(root)
      cancel_a()
      assert.are.equal("context canceled", a:err())
      assert.are.equal("context canceled", b:err())
      assert.are.equal("context canceled", c:err())
      assert.is_nil(root:err())
      assert.is_nil(sibling:err())
      cancel_root()
      assert.are.equal("context canceled", sibling:err())
    end)

  it("with_timeout says why it could not be made: no thread, or memory",
    function()
      if not support.ulimit_v_works() then
        pending("not under a sanitizer (ulimit -v)")
        return
      end
      -- Its deadline's timer thread could not be started: that was
      -- reported as "not enough memory" (conc.after said why).
      local out, rc = support.run_script([[
        local conc = require("conc")
        local bg = conc.background()
      ]] .. support.FILL_ADDRESS_SPACE .. [[
        print(select(2, pcall(conc.with_timeout, bg, 1)))
        print(select(2, pcall(conc.with_deadline, bg, conc.now() + 1)))
        fill = nil
        collectgarbage()
        collectgarbage()
        local ctx, cancel = conc.with_timeout(bg, 0.01)
        print("after", ctx:done():recv(), ctx:err())
        cancel()
      ]], 60, "ulimit -v 300000")
      assert.are.equal(0, rc, out)
      assert.matches("conc.with_timeout: cannot create thread\n" ..
        "conc.with_deadline: cannot create thread\n" ..
        "after\tnil\tcontext deadline exceeded\n", out, 1, true)
    end)

  it("a child of a canceled parent is born canceled", function()
    local p, cancel = conc.with_cancel(conc.background())
    cancel("why")
    local c = conc.with_cancel(p)
    assert.are.equal("context canceled", c:err())
    assert.are.equal("why", c:cause())
  end)

  it("cancellation causes travel to descendants", function()
    local p, cancel = conc.with_cancel_cause(conc.background())
    local c = conc.with_cancel(p)
    cancel({code = 7})
    assert.are.same({code = 7}, p:cause())
    assert.are.same({code = 7}, c:cause())
    assert.are.equal("context canceled", c:err())
  end)

  it("a cause that cannot travel still cancels: the cause is its text",
    function()
      -- cancel(err) raised on an error object with a metatable and left
      -- the context live: tasks waiting on it waited for good.
      local p, cancel = conc.with_cancel_cause(conc.background())
      local c = conc.with_cancel(p)
      local waiter = conc.go(function(c) return c:done():recv() end, c)
      cancel(setmetatable({}, {__tostring = function() return "MyErr" end}))
      assert.are.equal("context canceled", p:err())
      assert.are.equal("MyErr", p:cause())
      assert.are.equal("MyErr", c:cause())
      assert.are.same({true, nil, false}, {waiter:join()})
      local q, cancel2 = conc.with_cancel(conc.background())
      cancel2(coroutine.create(print))
      assert.are.equal("context canceled", q:err())
      assert.matches("^thread: ", q:cause())
    end)

  it("with_timeout: the deadline fires within a small bound", function()
    local t0 = conc.now()
    local ctx = conc.with_timeout(conc.background(), 0.05)
    local d, has = ctx:deadline()
    assert.is_true(has)
    assert.is_true(math.abs(d - (t0 + 0.05)) < 0.01)
    ctx:done():recv()
    local dt = conc.now() - t0
    assert.are.equal("context deadline exceeded", ctx:err())
    assert.is_true(dt >= 0.05, "fired after " .. dt)
    assert.is_true(dt < 1, "fired after " .. dt)
  end)

  it("with_deadline in the past is canceled at once", function()
    local ctx = conc.with_deadline(conc.background(), conc.now() - 1)
    assert.are.equal("context deadline exceeded", ctx:err())
    local z = conc.with_timeout(conc.background(), 0)
    assert.are.equal("context deadline exceeded", z:err())
    -- Go's WithTimeout: the deadline is now + d, a negative d's before now
    local t0 = conc.now()
    local y = conc.with_timeout(conc.background(), -1)
    assert.are.equal("context deadline exceeded", y:err())
    local d, has = y:deadline()
    assert.is_true(has)
    assert.is_true(d <= t0 - 0.999 and d > t0 - 1.5, "deadline " .. (d - t0))
    assert.is_true(select(2, conc.with_timeout(conc.background(),
      -math.huge):deadline()))
  end)

  it("a child's deadline is never later than its parent's", function()
    local p = conc.with_timeout(conc.background(), 0.02)
    local c = conc.with_timeout(p, 100)
    local pd = p:deadline()
    assert.are.equal(pd, (c:deadline()))
    c:done():recv()
    assert.are.equal("context deadline exceeded", c:err())
  end)

  it("cancel before the deadline: canceled, and the timer is gone",
    function()
      local ctx, cancel = conc.with_timeout(conc.background(), 0.02)
      cancel()
      conc.sleep(0.04)
      assert.are.equal("context canceled", ctx:err())
    end)

  it("values: nearest key wins, missing is nil, conc objects as keys",
    function()
      local key = conc.chan()
      local a = conc.with_value(conc.background(), "user", "ann")
      local b = conc.with_value(a, key, {n = 1})
      local c = conc.with_value(b, "user", "bob")
      assert.are.equal("bob", c:value("user"))
      assert.are.equal("ann", b:value("user"))
      assert.are.same({n = 1}, c:value(key))
      assert.is_nil(c:value(conc.chan()))
      assert.is_nil(c:value("nobody"))
      assert.has_error(function() conc.with_value(a, {}, 1) end,
        "conc.with_value: key must be a string, number, boolean or " ..
        "conc object, got table")
    end)

  it("a context passed to a worker is the same context", function()
    local ctx, cancel = conc.with_cancel(conc.background())
    local h = conc.go(function(c, cc)
      cc("from the worker")
      return c:err()
    end, ctx, cancel)
    assert.are.same({true, "context canceled"}, {h:join()})
    assert.are.equal("from the worker", ctx:cause())
  end)

  it("cancel is a <close> variable: Go's defer cancel()", function()
    local ctx
    do
      local c, cancel <close> = conc.with_cancel(conc.background())
      ctx = c
      assert.is_nil(ctx:err())
    end
    assert.are.equal("context canceled", ctx:err())
  end)

  it("cancellation wakes 50 workers blocked in different calls", function()
    local ctx, cancel = conc.with_cancel(conc.background())
    local ready = conc.chan(50)
    local never, full = conc.chan(), conc.chan(1)
    full:send("x")
    local wg = conc.waitgroup()
    wg:add(1)  -- never done: waits on it block until canceled
    local kinds = {"recv", "send", "select", "sleep", "wait"}
    local hs = {}
    for i = 1, 50 do
      local kind = kinds[(i - 1) % #kinds + 1]
      hs[i] = conc.go(function(k, c, r, nv, fl, g)
        r:send(true)
        if k == "recv" then return select(3, nv:recv(c)) end
        if k == "send" then return select(2, fl:send("y", c)) end
        if k == "select" then
          local j = conc.select{{"recv", nv}, {"recv", c:done()}}
          return j == 2 and c:err()
        end
        if k == "sleep" then return select(2, conc.sleep(1000, c)) end
        return select(2, g:wait(c))
      end, kind, ctx, ready, never, full, wg)
    end
    for _ = 1, 50 do ready:recv() end
    local t0 = conc.now()
    cancel()
    for i = 1, 50 do
      local ok, why = hs[i]:join()
      assert.is_true(ok)
      assert.are.equal("context canceled", why)
    end
    assert.is_true(conc.now() - t0 < 5)
  end)

  it("operations bounded by a live context still complete", function()
    local ctx = conc.with_cancel(conc.background())
    local ch = conc.chan(1)
    assert.is_true(ch:send(1, ctx))
    assert.are.same({1, true}, {ch:recv(ctx)})
    ch:close()
    assert.are.same({nil, false}, {ch:recv(ctx)})
    assert.has_error(function() ch:send(1, ctx) end,
      "conc.chan:send: send on closed channel")
  end)

  it("a canceled context fails a ready operation, as ctx.Err is checked first",
    function()
      local ctx, cancel = conc.with_cancel(conc.background())
      cancel()
      local ch = conc.chan(1)
      assert.are.same({nil, "context canceled"}, {ch:send(1, ctx)})
      assert.are.equal(0, #ch)
    end)

  it("rejects bad arguments", function()
    assert.has_error(function() conc.with_cancel(nil) end)
    assert.has_error(function() conc.with_timeout(conc.background(), "x") end)
    assert.has_error(function() conc.chan():recv({}) end)
    assert.has_error(function() conc.sleep(1, 2) end)
  end)

end)
