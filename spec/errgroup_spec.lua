local conc = require("conc")
local support = require("support")

describe("conc.errgroup", function()
  it("runs every function exactly once and waits for them all", function()
    local g = conc.errgroup()
    local seen = conc.map()
    for i = 1, 100 do
      g:go(function(seen, i) seen:store(i, (seen:load(i) or 0) + 1) end,
        seen, i)
    end
    assert.is_true(g:wait())
    assert.are.equal(100, seen:len())
    for i = 1, 100 do assert.are.equal(1, seen:load(i)) end
    assert.are.equal(0, g:running())
    assert.are.same({}, g:errors())
  end)

  it("returns the first error; it cancels ctx with itself as cause",
    function()
      local g, ctx = conc.errgroup()
      local started = conc.waitgroup()
      started:add(3)
      for _ = 1, 3 do
        g:go(function(ctx, started)
          started:done()
          ctx:done():recv()  -- until the first failure cancels ctx
          return nil, "late"
        end, ctx, started)
      end
      started:wait()
      g:go(function() return nil, "first" end)
      assert.are.same({nil, "first"}, {g:wait()})
      assert.are.equal("context canceled", ctx:err())
      assert.are.equal("first", ctx:cause())
      -- later failures are kept, not lost
      assert.are.same({"first", "late", "late", "late"}, g:errors())
      assert.are.same({nil, "first"}, {g:wait()})  -- and stays
    end)

  it("a raise is a failure too; its value travels by copy", function()
    local g = conc.errgroup()
    g:go(function() error({code = 42}) end)
    local ok, err = g:wait()
    assert.is_nil(ok)
    assert.are.same({code = 42}, err)
    local g2 = conc.errgroup()
    g2:go(function() error("boom") end)
    local _, e2 = g2:wait()
    assert.matches("boom", e2)
    assert.matches("traceback", e2)  -- as join reports a string error
    local g3 = conc.errgroup()
    g3:go(function() error(nil) end)
    assert.are.same({nil, "errgroup: a function failed with a nil error"},
      {g3:wait()})
  end)

  it("error(nil) reads the same in errors() and the context's cause",
    function()
      local nil_error = "errgroup: a function failed with a nil error"
      local g, ctx = conc.errgroup()
      for _ = 1, 4 do g:go(function() error(nil) end) end
      assert.are.same({nil, nil_error}, {g:wait()})
      local errs = g:errors()
      assert.are.equal(4, #errs)
      for i = 1, 4 do assert.are.equal(nil_error, errs[i]) end
      assert.are.equal("context canceled", ctx:err())
      assert.are.equal(nil_error, ctx:cause())
    end)

  it("returning nil alone, nil, false, or values, is a success", function()
    local g = conc.errgroup()
    g:go(function() return nil end)
    g:go(function() return nil, false end)  -- as cb:call has it
    g:go(function() return 1, "x" end)
    g:go(function() return coroutine.create(print) end)  -- never encoded
    assert.is_true(g:wait())
  end)

  it("ctx is canceled when wait returns, and follows its parent",
    function()
      local g, ctx = conc.errgroup()
      g:go(function() end)
      assert.is_true(g:wait())
      assert.are.equal("context canceled", ctx:err())
      assert.are.equal("context canceled", ctx:cause())  -- no error: Go's Cause
      local parent, cancel = conc.with_cancel(conc.background())
      local g2, ctx2 = conc.errgroup(parent)
      assert.is_nil(ctx2:err())
      cancel()
      assert.are.equal("context canceled", ctx2:err())
      assert.is_true(g2:wait())
    end)

  it("set_limit bounds the functions running at once", function()
    local g = conc.errgroup()
    g:set_limit(3)
    assert.are.equal(3, g:limit())
    local cur, max, done = conc.atomic(), conc.atomic(), conc.atomic()
    for _ = 1, 30 do
      g:go(function(cur, max, done)
        local n = cur:add(1)
        repeat
          local m = max:load()
        until n <= m or max:compare_and_swap(m, n)
        conc.sleep(0.001)
        cur:add(-1)
        done:add(1)
      end, cur, max, done)
    end
    assert.is_true(g:wait())
    assert.are.equal(30, done:load())
    assert.is_true(max:load() <= 3)
  end)

  it("running() never counts more than the limit and the callers of go",
    function()
      -- A function is uncounted before its unit of the limit goes back:
      -- counted after, running() read limit + 2 now and then with the
      -- main script alone calling go.
      for _ = 1, 5 do
        local g = conc.errgroup()
        g:set_limit(8)
        local max = conc.atomic()
        for _ = 1, 200 do
          g:go(function(g, max)
            local n = g:running()
            repeat
              local m = max:load()
            until n <= m or max:compare_and_swap(m, n)
            conc.sleep(0.001)  -- so that several end together
          end, g, max)
        end
        assert.is_true(g:wait())
        assert.is_true(max:load() <= 9, "running() read " .. max:load())
        assert.are.equal(0, g:running())
      end
    end)

  it("wait returns with every unit of the limit back: try_go then goes",
    function()
      -- A function left the count before it gave its unit back for a
      -- moment (this stop's first bound on running()): g:wait() then
      -- try_go was false 284 times in 5,000.
      local g = conc.errgroup()
      g:set_limit(1)
      local refused = 0
      for _ = 1, 2000 do
        g:go(function() conc.sleep(0.00001) end)
        assert.is_true(g:wait())
        if not g:try_go(function() end) then refused = refused + 1 end
        assert.is_true(g:wait())
      end
      assert.are.equal(0, refused)
    end)

  it("try_go is false at the limit; set_limit raises while running",
    function()
      local g = conc.errgroup()
      g:set_limit(1)
      local gate = conc.chan()
      assert.is_true(g:try_go(function(gate) gate:recv() end, gate))
      assert.is_false(g:try_go(function() end))
      assert.has_error(function() g:set_limit(5) end,
        "conc.errgroup:set_limit: errgroup: modify limit while 1 workers "
        .. "in the group are still active")
      gate:send(true)
      assert.is_true(g:wait())
      g:set_limit(-1)
      assert.are.equal(-1, g:limit())
      assert.is_true(g:try_go(function() end))
      assert.is_true(g:wait())
    end)

  it("wait with a timeout or a context leaves the group running",
    function()
      local g, ctx = conc.errgroup()
      local gate = conc.chan()
      g:go(function(gate) gate:recv() end, gate)
      assert.are.same({nil, "timeout"}, {g:wait(0.02)})
      local c = conc.with_timeout(conc.background(), 0.02)
      assert.are.same({nil, "context deadline exceeded"}, {g:wait(c)})
      assert.is_nil(ctx:err())
      gate:send(true)
      assert.is_true(g:wait(10))
    end)

  it("misuse raises", function()
    local g = conc.errgroup()
    assert.has_error(function() g:go(42) end)
    assert.has_error(function()
      g:go(function() end, coroutine.create(print))
    end)
    assert.are.equal(0, g:running())  -- nothing counted
    assert.has_error(function() g:set_limit("x") end)
    assert.has_error(function() conc.errgroup(42) end)
    assert.has_error(function() g.wait(conc.mutex()) end)
  end)

  it("an argument that cannot travel: the method called is named, its "
    .. "arguments counted as Lua counts a method's", function()
    local co = coroutine.create(print)
    local g, wg = conc.errgroup(), conc.waitgroup()
    local function raised(f, ...)
      local ok, err = pcall(f, ...)
      assert.is_false(ok)
      return err
    end
    assert.are.equal("conc.errgroup:go: argument #3: cannot transfer a "
      .. "coroutine", raised(g.go, g, function() end, 1, co))
    assert.are.equal("conc.errgroup:try_go: argument #2: cannot transfer "
      .. "a coroutine", raised(g.try_go, g, function() end, co))
    assert.are.equal("conc.waitgroup:go: argument #2: cannot transfer a "
      .. "coroutine", raised(wg.go, wg, function() end, co))
    assert.are.equal("conc.workpool: argument #2, upvalue 'co': cannot "
      .. "transfer a coroutine",
      raised(conc.workpool, 1, function() return co end))
    assert.is_true(g:wait())
    assert.is_true(wg:wait(0))
  end)

  it("is shared: g:go from a worker, wait from another", function()
    local g, ctx = conc.errgroup()
    local n = conc.atomic()
    local wg = conc.waitgroup()
    for _ = 1, 4 do
      wg:go(function(g, n)
        for _ = 1, 25 do g:go(function(n) n:add(1) end, n) end
      end, g, n)
    end
    assert.is_true(wg:wait())
    local h = conc.go(function(g) return g:wait() end, g)
    assert.are.same({true, true}, {h:join()})
    assert.are.equal(100, n:load())
    assert.are.equal("context canceled", ctx:err())
  end)

  it("a limit of 0 starts nothing: try_go is false, go waits for ever",
    function()
      -- As Go's SetLimit(0): Go blocks; here the deadlock check ends it.
      local out, rc = support.run_script([[
        local conc = require("conc")
        local g = conc.errgroup()
        g:set_limit(0)
        print("try_go", g:try_go(function() end))
        local h = conc.go(function(eg)
          eg:go(function() end)
        end, g)
        print("task", h:wait(0.1))
        print("counted", g:running())
        g:go(function() end)
      ]], 10)
      assert.are.equal(2, rc)
      assert.matches("try_go\tfalse\n", out)
      assert.matches("task\tfalse\ttimeout\n", out)
      assert.matches("counted\t1\n", out)
      assert.matches("worker %d+: waits in errgroup go", out)
      assert.matches("main: waits in errgroup go", out)
    end)

  it("g:go waiting at the limit is named for deadlock detection",
    function()
      local out, rc = support.run_script([[
        local conc = require("conc")
        local g = conc.errgroup()
        g:set_limit(1)
        local never = conc.chan()
        g:go(function(c) c:recv() end, never)
        g:go(function() end)
      ]], 10)
      assert.are.equal(2, rc)
      assert.matches("errgroup go", out)
    end)
end)
