local conc = require("conc")
local support = require("support")

describe("conc.chan", function()
  it("is unbuffered by default: len and cap are 0", function()
    local ch = conc.chan()
    assert.are.equal(0, ch:cap())
    assert.are.equal(0, #ch)
    assert.are.equal(0, ch:len())
  end)

  it("unbuffered: a send cannot complete without a receiver", function()
    local ch = conc.chan()
    assert.is_false(ch:try_send(1))
    local t0 = conc.now()
    local ok, err = ch:send(1, 0.05)
    assert.is_nil(ok)
    assert.are.equal("timeout", err)
    assert.is_true(conc.now() - t0 >= 0.05)
    -- nothing was left behind by the failed sends
    local v, got = ch:try_recv()
    assert.is_nil(v)
    assert.is_nil(got)
  end)

  it("unbuffered: a send rendezvous with a parked receiver", function()
    local ch, back = conc.chan(), conc.chan()
    local h = conc.go(function(c, b)
      for _ = 1, 1000 do
        local v = c:recv()
        b:send(v * 2)
      end
    end, ch, back)
    for i = 1, 1000 do
      assert.is_true(ch:send(i))
      -- the value has been taken: the channel holds nothing
      assert.are.equal(0, #ch)
      assert.are.equal(i * 2, back:recv())
    end
    assert.is_true((h:join()))
  end)

  it("buffered: FIFO order, len and cap", function()
    local ch = conc.chan(3)
    assert.are.equal(3, ch:cap())
    assert.is_true(ch:send("a"))
    assert.is_true(ch:try_send("b"))
    assert.is_true(ch:try_send("c"))
    assert.are.equal(3, #ch)
    assert.is_false(ch:try_send("d"))
    assert.are.same({"a", true}, {ch:recv()})
    assert.are.same({"b", true}, {ch:try_recv()})
    assert.are.equal(1, #ch)
  end)

  it("receive from a closed channel drains the buffer, then nil, false",
    function()
      local ch = conc.chan(2)
      ch:send(1)
      ch:send(2)
      ch:close()
      assert.are.same({1, true}, {ch:recv()})
      assert.are.same({2, true}, {ch:recv()})
      local v, ok = ch:recv()
      assert.is_nil(v)
      assert.is_false(ok)
      v, ok = ch:try_recv()
      assert.is_nil(v)
      assert.is_false(ok)
    end)

  it("send on a closed channel and close of a closed channel raise", function()
    local ch = conc.chan(1)
    ch:close()
    assert.has_error(function() ch:send(1) end,
      "conc.chan:send: send on closed channel")
    assert.has_error(function() ch:try_send(1) end,
      "conc.chan:try_send: send on closed channel")
    assert.has_error(function() ch:close() end,
      "conc.chan:close: close of closed channel")
  end)

  it("recv with a timeout returns nil, nil, 'timeout' after the time",
    function()
      local ch = conc.chan()
      local t0 = conc.now()
      local v, ok, why = ch:recv(0.05)
      local dt = conc.now() - t0
      assert.is_nil(v)
      assert.is_nil(ok)
      assert.are.equal("timeout", why)
      assert.is_true(dt >= 0.05, "returned after " .. dt)
      assert.is_true(dt < 5)
    end)

  it("try_recv on an empty open channel returns nil, nil", function()
    local v, ok = conc.chan(1):try_recv()
    assert.is_nil(v)
    assert.is_nil(ok)
  end)

  it("carries nil and false as values", function()
    local ch = conc.chan(2)
    ch:send(nil)
    ch:send(false)
    assert.are.same({nil, true}, {ch:recv()})
    assert.are.same({false, true}, {ch:recv()})
  end)

  it("range iterates until the channel is closed", function()
    local ch = conc.chan(10)
    for i = 1, 10 do ch:send(i) end
    ch:close()
    local seen = {}
    for v in ch:range() do seen[#seen + 1] = v end
    assert.are.same({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, seen)
  end)

  it("range over a channel fed by a worker", function()
    local ch = conc.chan()
    local h = conc.go(function(c)
      for i = 1, 100 do c:send(i) end
      c:close()
    end, ch)
    local sum, n = 0, 0
    for v in ch:range() do sum, n = sum + v, n + 1 end
    assert.are.equal(100, n)
    assert.are.equal(5050, sum)
    assert.is_true((h:join()))
  end)

  it("a <close> variable closes the channel at the end of its scope",
    function()
      local outer
      do
        local ch <close> = conc.chan(1)
        outer = ch
      end
      assert.has_error(function() outer:send(1) end,
        "conc.chan:send: send on closed channel")
    end)

  it("rejects a bad capacity", function()
    assert.has_error(function() conc.chan(-1) end)
    assert.has_error(function() conc.chan(1.5) end)
    assert.has_error(function() conc.chan("x") end)
  end)

  it("methods reject other objects with a clear error", function()
    local ch = conc.chan()
    assert.has_error(function() ch.send({}, 1) end)
    local ok, err = pcall(ch.len, conc.go(function() end))
    assert.is_false(ok)
    assert.matches("conc.chan expected, got conc.worker", err, 1, true)
  end)

  it("is the same Lua value each time it is received in a state", function()
    local ch, carrier = conc.chan(), conc.chan(2)
    carrier:send(ch)
    carrier:send(ch)
    local a, b = carrier:recv(), carrier:recv()
    assert.is_true(rawequal(a, ch))
    assert.is_true(rawequal(b, ch))
    local t = {[ch] = "x"}
    assert.are.equal("x", t[a])
  end)

  it("outlives the handle that created it while others hold it", function()
    local carrier = conc.chan(1)
    do
      local ch = conc.chan(1)
      ch:send("kept")
      carrier:send(ch)
    end
    collectgarbage()
    collectgarbage()
    local h = conc.go(function(c)
      local inner = c:recv()
      return inner:recv()
    end, carrier)
    assert.are.same({true, "kept", true}, {h:join()})
  end)
end)

describe("conc.chan under load", function()
  local function producers_consumers(cap, nprod, ncons, per)
    local ch = conc.chan(cap)
    local prods, cons = {}, {}
    for p = 1, nprod do
      prods[p] = conc.go(function(c, id, n)
        for i = 1, n do c:send(id * 1000000 + i) end
      end, ch, p, per)
    end
    for k = 1, ncons do
      cons[k] = conc.go(function(c)
        local got = {}
        for v in c:range() do got[#got + 1] = v end
        return got
      end, ch)
    end
    for p = 1, nprod do support.join_ok(prods[p]) end
    ch:close()
    local seen, total = {}, 0
    for k = 1, ncons do
      local got = support.join_ok(cons[k])
      for _, v in ipairs(got) do
        assert.is_nil(seen[v], "received twice: " .. v)
        seen[v] = true
        total = total + 1
      end
    end
    assert.are.equal(nprod * per, total)
    for p = 1, nprod do
      for i = 1, per do
        assert.is_true(seen[p * 1000000 + i], "lost " .. p .. "/" .. i)
      end
    end
  end

  it("4 producers x 4 consumers, unbuffered: every value exactly once",
    function() producers_consumers(0, 4, 4, 5000) end)

  it("4 producers x 3 consumers, buffered: every value exactly once",
    function() producers_consumers(16, 4, 3, 5000) end)

  it("close wakes every blocked receiver with nil, false", function()
    for _ = 1, 20 do
      local ch, ready = conc.chan(), conc.chan(8)
      local hs = {}
      for i = 1, 8 do
        hs[i] = conc.go(function(c, r)
          r:send(true)
          return c:recv()
        end, ch, ready)
      end
      for _ = 1, 8 do ready:recv() end
      ch:close()
      for i = 1, 8 do
        local ok, v, open = hs[i]:join()
        assert.is_true(ok)
        assert.is_nil(v)
        assert.is_false(open)
      end
    end
  end)

  it("close makes every blocked sender raise 'send on closed channel'",
    function()
      for _ = 1, 20 do
        local ch, ready = conc.chan(), conc.chan(8)
        local hs = {}
        for i = 1, 8 do
          hs[i] = conc.go(function(c, r)
            r:send(true)
            c:send(1)
          end, ch, ready)
        end
        for _ = 1, 8 do ready:recv() end
        ch:close()
        for i = 1, 8 do
          local ok, err = hs[i]:join()
          assert.is_false(ok)
          assert.matches("send on closed channel", err, 1, true)
        end
      end
    end)

  it("close racing with receivers: values sent before close all arrive",
    function()
      for _ = 1, 50 do
        local ch = conc.chan(4)
        local h = conc.go(function(c)
          local n = 0
          for _ in c:range() do n = n + 1 end
          return n
        end, ch)
        for i = 1, 37 do ch:send(i) end
        ch:close()
        assert.are.equal(37, support.join_ok(h))
      end
    end)
end)

describe("conc.chan: waiters of a buffered channel (Go's runtime order)",
  function()
  -- Waits until `n` tasks are parked in `what` or a select, unclaimed
  -- (conc.workers() says "blocked"; woken but not yet run: "waiting").
  local function parked(what, n)
    local function count()
      local k = 0
      for _, w in ipairs(conc.workers()) do
        if w.id ~= 0 and (w.waiting_in == what or w.waiting_in == "select")
           and w.state == "blocked" then
          k = k + 1
        end
      end
      return k
    end
    local t0 = conc.now()
    while count() < n do
      assert(conc.now() - t0 < 10, "not parked: " .. what)
      conc.sleep(0.0005)
    end
  end

  it("senders parked on a full channel are received in that order",
    function()
      for _, cap in ipairs({1, 2, 4}) do
        for _ = 1, 5 do
          local ch = conc.chan(cap)
          for i = 1, cap do ch:send(-i) end
          local hs = {}
          for i = 1, 5 do
            hs[i] = conc.go(function(c, v) c:send(v) end, ch, i)
            parked("chan send", i)
          end
          for i = 1, cap do assert.are.equal(-i, ch:recv()) end
          for i = 1, 5 do assert.are.equal(i, ch:recv()) end
          for i = 1, 5 do support.join_ok(hs[i]) end
        end
      end
    end)

  it("receivers parked on an empty channel get values in that order",
    function()
      for _, cap in ipairs({1, 2, 4}) do
        for _ = 1, 5 do
          local ch, out = conc.chan(cap), conc.chan(5)
          local hs = {}
          for i = 1, 5 do
            hs[i] = conc.go(function(c, o, me)
              o:send({me, (c:recv())})
            end, ch, out, i)
            parked("chan receive", i)
          end
          for v = 1, 5 do ch:send(v) end
          local got = {}
          for _ = 1, 5 do
            local r = out:recv()
            got[r[1]] = r[2]
          end
          assert.are.same({1, 2, 3, 4, 5}, got)
          for i = 1, 5 do support.join_ok(hs[i]) end
        end
      end
    end)

  it("a select parked among them is served in its turn too", function()
    for _, cap in ipairs({1, 3}) do
      for _ = 1, 5 do
        local ch, out = conc.chan(cap), conc.chan(10)
        for i = 1, cap do ch:send(-i) end
        local hs = {}
        for i = 1, 5 do -- senders 2 and 4 wait in a select
          hs[i] = conc.go(function(c, v, o)
            if v % 2 == 0 then
              o:send((conc.select{{"send", c, v}, {"recv", conc.chan()}}))
            else
              c:send(v)
            end
          end, ch, i, out)
          parked("chan send", i)
        end
        for i = 1, cap do assert.are.equal(-i, ch:recv()) end
        for i = 1, 5 do assert.are.equal(i, ch:recv()) end
        for i = 1, 5 do support.join_ok(hs[i]) end
        assert.are.same({1, 1}, {(out:recv()), (out:recv())})
        -- and receivers: a select waits second of three
        local rs = {}
        for i = 1, 3 do
          rs[i] = conc.go(function(c, me, o)
            if me == 2 then
              local _, v = conc.select{{"recv", conc.chan()}, {"recv", c}}
              o:send({me, v})
            else
              o:send({me, (c:recv())})
            end
          end, ch, i, out)
          parked("chan receive", i)
        end
        for v = 1, 3 do ch:send(v * 10) end
        local got = {}
        for _ = 1, 3 do
          local r = out:recv()
          got[r[1]] = r[2]
        end
        assert.are.same({10, 20, 30}, got)
        for i = 1, 3 do support.join_ok(rs[i]) end
      end
    end
  end)

  it("a parked sender is not overtaken by senders that keep it full",
    function()
      -- Go's bound: a receive moves the first waiting sender's value in,
      -- so at most cap + 4 (the flooders, one value each) come first.
      -- The flooders send plainly, then in selects (whose first poll
      -- goes after the parked senders too).
      for _, cap in ipairs({1, 2, 8, -1, -2, -8}) do
        local by_select = cap < 0
        cap = math.abs(cap)
        local ch, stop = conc.chan(cap), conc.atomic()
        local floods = {}
        for f = 1, 4 do
          floods[f] = conc.go(function(c, s, sel)
            while s:load() == 0 do
              if sel then conc.select{{"send", c, "flood"}}
              else c:send("flood") end
            end
          end, ch, stop, by_select)
        end
        for _ = 1, 5 do
          parked("chan send", 4) -- full again: the victim must wait
          local victim = conc.go(function(c) c:send("victim") end, ch)
          parked("chan send", 5)
          local before = 0
          while ch:recv() ~= "victim" do before = before + 1 end
          assert.is_true(before <= cap + 4,
            ("cap %d: %d values before the parked sender's"):format(
              cap, before))
          support.join_ok(victim)
        end
        stop:store(1)
        ch:close() -- a flooder still sending raises: they all end
        for f = 1, 4 do
          local ok, err = floods[f]:join()
          assert.is_true(ok or err:find("send on closed channel", 1, true)
                         ~= nil, err)
        end
      end
    end)

  it("timed sends and receives racing on small buffers: exactly once",
    function()
      -- A send that timed out was not delivered: it is sent again. A
      -- value is lost or received twice if a timeout and a hand-off
      -- both claim the same wait.
      for _, cap in ipairs({1, 2, 3}) do
        local ch, got = conc.chan(cap), conc.chan(64)
        local prods, cons = {}, {}
        for p = 1, 6 do
          prods[p] = conc.go(function(c, id)
            for i = 1, 1000 do
              local v = id * 100000 + i
              while not c:send(v, 0.0002) do end
            end
          end, ch, p)
        end
        for k = 1, 6 do
          cons[k] = conc.go(function(c, out)
            local n = 0
            while true do
              local v, ok = c:recv(0.0002)
              if ok then
                out:send(v)
                n = n + 1
              elseif ok == false then
                return n
              end
            end
          end, ch, got)
        end
        local seen, total = {}, 0
        while total < 6 * 1000 do
          local v = got:recv()
          assert.is_nil(seen[v], "received twice: " .. v)
          seen[v] = true
          total = total + 1
        end
        for p = 1, 6 do support.join_ok(prods[p]) end
        ch:close()
        local n = 0
        for k = 1, 6 do n = n + support.join_ok(cons[k]) end
        assert.are.equal(6 * 1000, n)
      end
    end)
end)
