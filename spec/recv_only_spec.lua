local conc = require("conc")
local support = require("support")

-- Every channel conc owns and hands out. make() returns the channel and
-- a finish() that ends its owner (so nothing outlives the test).
local owned = {
  {"h:done()", function()
    local gate = conc.chan()
    local h = conc.go(function(g) g:recv() end, gate)
    return h:done(), function()
      gate:send(true)
      assert.is_true(h:wait())
    end
  end},
  {"ctx:done()", function()
    local ctx, cancel = conc.with_cancel(conc.background())
    return ctx:done(), cancel
  end},
  {"conc.background():done()", function()
    return conc.background():done(), function() end
  end},
  {"conc.after()", function()
    return conc.after(60), function() end
  end},
  {"timer.C", function()
    local t = conc.timer(60)
    return t.C, function() t:stop() end
  end},
  {"ticker.C", function()
    local t = conc.ticker(60)
    return t.C, function() t:stop() end
  end},
}

-- Every way user code sends on or closes a channel, and what it raises.
local ops = {
  {"send", "conc.chan:send: send on receive-only channel",
    function(ch) return ch:send(1, 0) end},
  {"send with a context", "conc.chan:send: send on receive-only channel",
    function(ch)
      local ctx, cancel = conc.with_cancel(conc.background())
      cancel()  -- before the fix, so that the send cannot block
      return ch:send(1, ctx)
    end},
  {"try_send", "conc.chan:try_send: send on receive-only channel",
    function(ch) return ch:try_send(1) end},
  {"close", "conc.chan:close: close of receive-only channel",
    function(ch) return ch:close() end},
  {"a select send case",
    "conc.select: case #2: send on receive-only channel",
    function(ch)
      return conc.select{{"recv", nil}, {"send", ch, 1}, default = true}
    end},
  {"<close>", "conc.chan:close: close of receive-only channel",
    function(ch) local _ <close> = ch end},
}

-- Closing the background's done channel would break every later spec of
-- this process if it were let through: those cases run in a process of
-- their own.
local function in_own_process(kind, op)
  return kind == "conc.background():done()" and
    (op == "close" or op == "<close>")
end

-- An error message without the "file:line: " that luaL_error prepends.
local function bare(err)
  return (tostring(err):gsub("^[^:\n]*:%d+: ", ""))
end

local function check_refused(make, op_fn, message)
  local ch, finish = make()
  local ok, err = pcall(op_fn, ch)
  finish()
  assert.is_false(ok)
  assert.are.equal(message, bare(err))
end

describe("channels conc owns are receive-only:", function()
  for _, kind in ipairs(owned) do
    for _, op in ipairs(ops) do
      it(op[1] .. " on " .. kind[1] .. " raises", function()
        if not in_own_process(kind[1], op[1]) then
          return check_refused(kind[2], op[3], op[2])
        end
        local out, rc = support.run_script(([[
          local conc = require("conc")
          local ch = conc.background():done()
          local ok, err = pcall(function() %s end)
          print(ok, (tostring(err):gsub("^[^:]*:%%d+: ", "")))
          local ctx = conc.with_value(conc.background(), "k", 1)
          local c = conc.chan(1)
          c:send(5)
          print(c:recv(ctx))
        ]]):format(op[1] == "close" and "ch:close()"
                     or "local _ <close> = ch"), 10)
        assert.are.equal(0, rc, out)
        assert.are.equal("false\t" .. op[2] .. "\n5\ttrue\n", out)
      end)
    end
  end

  it("an owned channel still fires for its owner after a refused close",
    function()
      local gate = conc.chan()
      local h = conc.go(function(g) g:recv(); return "r" end, gate)
      assert.is_false(pcall(h:done().close, h:done()))
      assert.are.equal("default",
        conc.select{{"recv", h:done()}, default = true})
      gate:send(true)
      assert.are.same({nil, false}, {h:done():recv()})
      assert.are.same({true, "r"}, {h:join()})

      local ctx, cancel = conc.with_cancel(conc.background())
      assert.is_false(pcall(ctx:done().close, ctx:done()))
      assert.is_nil(ctx:err())
      cancel()
      assert.are.same({nil, false}, {ctx:done():recv()})

      local t = conc.timer(0.001)
      assert.is_false(pcall(t.C.close, t.C))
      assert.are.equal("number", math.type(t.C:recv()) and "number")
    end)

  it("the done channel of a worker, passed to another, stays receive-only",
    function()
      local gate = conc.chan()
      local h = conc.go(function(g) g:recv() end, gate)
      local w = conc.go(function(d)
        return select(2, pcall(d.close, d)), select(2, pcall(d.try_send, d, 1))
      end, h:done())
      local r = {w:join()}
      gate:send(true)
      assert.are.same({true}, {h:join()})
      assert.are.same({true, "conc.chan:close: close of receive-only channel",
        "conc.chan:try_send: send on receive-only channel"}, r)
    end)
end)

describe("the crashes of closing an owned channel (regressions)", function()
  local function run(body)
    local out, rc = support.run_script(
      "local conc = require('conc')\n" .. body, 10)
    assert.are.equal(0, rc, out)
    return out
  end

  it("closing h:done(), then join, returns the worker's results", function()
    local out = run([[
      local gate = conc.chan()
      local h = conc.go(function(g) g:recv(); return "result", 42 end, gate)
      print(pcall(h:done().close, h:done()))
      print(h:status())
      gate:send(true)
      print(h:join())
    ]])
    assert.are.equal("false\tconc.chan:close: close of receive-only " ..
      "channel\nrunning\ntrue\tresult\t42\n", out)
  end)

  it("closing ctx:done(), then recv(ctx), receives the value sent", function()
    local out = run([[
      local ctx, cancel = conc.with_cancel(conc.background())
      print(pcall(ctx:done().close, ctx:done()))
      local ch = conc.chan()
      local h = conc.go(function(c) c:send("v") end, ch)
      print(ch:recv(ctx))
      print(ctx:err())
      h:join()
    ]])
    assert.are.equal("false\tconc.chan:close: close of receive-only " ..
      "channel\nv\ttrue\nnil\n", out)
  end)

  it("closing ctx:done(), then send(v, ctx), sends v", function()
    local out = run([[
      local ctx = conc.with_cancel(conc.background())
      print(pcall(ctx:done().close, ctx:done()))
      local ch = conc.chan()
      local h = conc.go(function(c) return c:recv() end, ch)
      print(ch:send("v", ctx))
      print(h:join())
    ]])
    assert.are.equal("false\tconc.chan:close: close of receive-only " ..
      "channel\ntrue\ntrue\tv\ttrue\n", out)
  end)

  it("closing ctx:done(), then wg:wait(ctx), waits for the counter",
    function()
      local out = run([[
        local ctx = conc.with_timeout(conc.background(), 0.05)
        print(pcall(ctx:done().close, ctx:done()))
        local wg = conc.waitgroup()
        wg:add(1)
        print(wg:wait(ctx))
        print(wg:count())
      ]])
      assert.are.equal("false\tconc.chan:close: close of receive-only " ..
        "channel\nnil\tcontext deadline exceeded\n1\n", out)
    end)

  it("closing ctx:done() does not make sleep(s, ctx) end early", function()
    local out = run([[
      local ctx = conc.with_cancel(conc.background())
      print(pcall(ctx:done().close, ctx:done()))
      local t0 = conc.now()
      print(conc.sleep(0.05, ctx))
      print(conc.now() - t0 >= 0.05)
    ]])
    assert.are.equal("false\tconc.chan:close: close of receive-only " ..
      "channel\ntrue\ntrue\n", out)
  end)
end)

describe("ch:recv_only()", function()
  it("refuses send, try_send, close, select send and <close>", function()
    local ch = conc.chan(1)
    local view = ch:recv_only()
    for _, op in ipairs(ops) do
      local ok, err = pcall(op[3], view)
      assert.is_false(ok, op[1])
      assert.are.equal(op[2], bare(err))
    end
    assert.are.equal(0, #ch)
    assert.is_true(ch:try_send(1))  -- the channel itself is untouched
    ch:close()
  end)

  it("receives what the channel carries: recv, try_recv, select, range",
    function()
      local ch = conc.chan(4)
      local view = ch:recv_only()
      assert.are.same({nil, nil, "would block"}, {view:try_recv()})
      ch:send("a")
      ch:send("b")
      ch:send("c")
      assert.are.equal(3, #view)
      assert.are.equal(3, view:len())
      assert.are.equal(4, view:cap())
      assert.are.same({"a", true}, {view:recv()})
      assert.are.same({"b", true}, {view:try_recv()})
      assert.are.same({1, "c", true}, {conc.select{{"recv", view}}})
      assert.are.same({nil, nil, "timeout"}, {view:recv(0)})
      assert.are.same({nil, nil, "timeout"}, {view:recv(0.001)})
      ch:send("d")
      assert.are.same({"d", true}, {view:recv(conc.background())})
      ch:send(1)
      ch:send(2)
      ch:close()
      local got = {}
      for v in view:range() do got[#got + 1] = v end
      assert.are.same({1, 2}, got)
      assert.are.same({nil, false}, {view:recv()})
    end)

  it("equals its channel, and its own recv_only is itself", function()
    local ch, other = conc.chan(), conc.chan()
    local view = ch:recv_only()
    assert.is_true(view == ch)
    assert.is_true(ch == view)
    assert.is_false(view == other)
    assert.is_false(other:recv_only() == view)
    assert.is_true(ch:recv_only() == view)
    assert.is_true(rawequal(view:recv_only(), view))
    local d = conc.background():done()
    assert.is_true(rawequal(d:recv_only(), d))
    assert.matches("^conc%.chan%.recv_only: 0x", tostring(view))
  end)

  it("travels to a worker and through a channel, and stays receive-only",
    function()
      local ch = conc.chan()
      local view = ch:recv_only()
      local pipe = conc.chan(1)
      pipe:send(view)
      local back = pipe:recv()
      assert.is_true(rawequal(back, view))
      local h = conc.go(function(v)
        local errs = {}
        for _, f in ipairs{v.send, v.try_send} do
          errs[#errs + 1] = select(2, pcall(f, v, 0))
        end
        errs[#errs + 1] = select(2, pcall(v.close, v))
        local sum = 0
        for x in v:range() do sum = sum + x end
        return errs, sum
      end, view)
      local n = 200
      for i = 1, n do ch:send(i) end
      ch:close()
      local errs, sum = support.join_ok(h)
      assert.are.same({
        "conc.chan:send: send on receive-only channel",
        "conc.chan:try_send: send on receive-only channel",
        "conc.chan:close: close of receive-only channel"}, errs)
      assert.are.equal(n * (n + 1) // 2, sum)
    end)

  it("a worker receives every value through its view, exactly once",
    function()
      local ch = conc.chan(8)
      local view = ch:recv_only()
      local workers, n = 4, 2000
      local hs = {}
      for w = 1, workers do
        hs[w] = conc.go(function(v)
          local ok, err = pcall(v.close, v)
          assert(not ok and err:find("close of receive%-only channel"))
          local count, sum = 0, 0
          for x in v:range() do count = count + 1; sum = sum + x end
          return count, sum
        end, view)
      end
      for i = 1, n do ch:send(i) end
      ch:close()
      local count, sum = 0, 0
      for w = 1, workers do
        local c, s = support.join_ok(hs[w])
        count, sum = count + c, sum + s
      end
      assert.are.equal(n, count)
      assert.are.equal(n * (n + 1) // 2, sum)
    end)
end)
