local conc = require("conc")
local support = require("support")

describe("conc.select", function()
  it("receives from the ready case and reports its index", function()
    local a, b = conc.chan(1), conc.chan(1)
    b:send("from b")
    local i, v, ok = conc.select{{"recv", a}, {"recv", b}}
    assert.are.equal(2, i)
    assert.are.equal("from b", v)
    assert.is_true(ok)
  end)

  it("sends on the ready case", function()
    local full, free = conc.chan(1), conc.chan(1)
    full:send(0)
    local i = conc.select{{"send", full, 1}, {"send", free, 2}}
    assert.are.equal(2, i)
    assert.are.same({2, true}, {free:recv()})
    assert.are.same({0, true}, {full:recv()})
    assert.are.equal(0, #full)
  end)

  it("refuses a field that is neither a case nor an option", function()
    local c = conc.chan(1)
    local msg = "conc.select: unknown field '%s' (a select takes its " ..
      "cases 1..n and the options default, timeout and n)"
    for key, shown in pairs({defualt = "defualt", [5] = "5", [2.5] = "2.5",
                             [true] = "true"}) do
      local cases = {{"recv", c}, default = true}
      cases[key] = true
      assert.has_error(function() conc.select(cases) end, msg:format(shown))
    end
    -- a bad case says where the select was called, as other errors do
    local ok, err = pcall(function() conc.select{{"sned", c}} end)
    assert.is_false(ok)
    assert.matches('^[^:]*select_spec%.lua:%d+: conc%.select: case #1: ' ..
      'first field must be "recv" or "send"$', err)
    -- cases up to n (nil ones too) and the options are fine
    assert.are.equal("default",
      conc.select{{"recv", c}, nil, {"recv", nil}, n = 3, default = true})
    assert.are.equal("timeout", conc.select{timeout = 0})
  end)

  it("default fires when nothing is ready", function()
    local i = conc.select{{"recv", conc.chan()}, default = true}
    assert.are.equal("default", i)
  end)

  it("a send that did not fire leaves nothing behind", function()
    local ch = conc.chan()
    assert.are.equal("default", conc.select{{"send", ch, "x"}, default = true})
    local v, ok = ch:try_recv()
    assert.is_nil(v)
    assert.is_nil(ok)
  end)

  it("timeout fires after the time when nothing is ready", function()
    local t0 = conc.now()
    local i = conc.select{{"recv", conc.chan()}, timeout = 0.05}
    local dt = conc.now() - t0
    assert.are.equal("timeout", i)
    assert.is_true(dt >= 0.05, "after " .. dt)
    assert.is_true(dt < 5)
  end)

  it("a closed channel is ready: nil, false", function()
    local ch = conc.chan()
    ch:close()
    assert.are.same({1, nil, false}, {conc.select{{"recv", ch}}})
  end)

  it("send on a closed channel raises", function()
    local ch = conc.chan()
    ch:close()
    assert.has_error(function() conc.select{{"send", ch, 1}} end,
      "conc.select: case #1: send on closed channel")
  end)

  it("ignores nil channels and nil cases", function()
    local ch = conc.chan(1)
    ch:send(7)
    local cases = {n = 3, [1] = {"recv", nil}, [3] = {"recv", ch}}
    assert.are.same({3, 7, true}, {conc.select(cases)})
    assert.are.equal("default",
      conc.select{{"recv", nil}, {"send", nil, 1}, default = true})
    assert.are.equal("timeout", conc.select{{"recv", nil}, timeout = 0.01})
  end)

  it("blocks until a worker makes a case ready", function()
    local a, b = conc.chan(), conc.chan()
    local h = conc.go(function(x) x:send("late") end, b)
    assert.are.same({2, "late", true}, {conc.select{{"recv", a}, {"recv", b}}})
    assert.is_true((h:join()))
  end)

  it("a blocked send case rendezvous with a receiver", function()
    local a, b = conc.chan(), conc.chan()
    local h = conc.go(function(x) return x:recv() end, b)
    assert.are.equal(2, (conc.select{{"send", a, 1}, {"send", b, 2}}))
    assert.are.same({true, 2, true}, {h:join()})
  end)

  it("chooses uniformly among ready cases", function()
    local a, b = conc.chan(1), conc.chan(1)
    local counts = {0, 0}
    local n = 10000
    for _ = 1, n do
      a:try_send(1)
      b:try_send(2)
      local i = conc.select{{"recv", a}, {"recv", b}}
      counts[i] = counts[i] + 1
    end
    -- 5000 expected each, standard deviation 50: +-1000 is 20 sigma
    assert.is_true(counts[1] > 4000 and counts[1] < 6000,
      "counts " .. counts[1] .. "/" .. counts[2])
    assert.are.equal(n, counts[1] + counts[2])
  end)

  it("many selecting workers: each value delivered exactly once", function()
    -- Go's idiom: a closed input is set to nil so its case never fires.
    local a, b = conc.chan(), conc.chan(4)
    local hs = {}
    for w = 1, 4 do
      hs[w] = conc.go(function(x, y)
        local got = {}
        while x or y do
          local i, v, ok = conc.select{{"recv", x}, {"recv", y}}
          if not ok then
            if i == 1 then x = nil else y = nil end
          else
            got[#got + 1] = v
          end
        end
        return got
      end, a, b)
    end
    for i = 1, 4000 do
      if i % 2 == 0 then a:send(i) else b:send(i) end
    end
    a:close()
    b:close()
    local seen, total = {}, 0
    for w = 1, 4 do
      for _, v in ipairs(support.join_ok(hs[w])) do
        assert.is_nil(seen[v])
        seen[v] = true
        total = total + 1
      end
    end
    assert.are.equal(4000, total)
  end)

  it("select mixing sends and receives between two workers", function()
    local ping, pong = conc.chan(), conc.chan()
    local h = conc.go(function(p, q)
      local n = 0
      while true do
        local _, v, ok = conc.select{{"recv", p}}
        if not ok then return n end
        n = n + 1
        conc.select{{"send", q, v + 1}}
      end
    end, ping, pong)
    for i = 1, 500 do
      conc.select{{"send", ping, i}}
      local _, v = conc.select{{"recv", pong}}
      assert.are.equal(i + 1, v)
    end
    ping:close()
    assert.are.equal(500, support.join_ok(h))
  end)

  it("rejects malformed cases with clear errors", function()
    assert.has_error(function() conc.select{{"peek", conc.chan()}} end,
      'conc.select: case #1: first field must be "recv" or "send"')
    assert.has_error(function() conc.select{{"recv", {}}} end,
      "conc.select: case #1: conc.chan expected")
    assert.has_error(function() conc.select{42} end,
      "conc.select: case #1 must be a table, got number")
    assert.has_error(function()
      conc.select{{"send", conc.chan(1), coroutine.create(print)}}
    end, "conc.select: case #1: value: cannot transfer a coroutine")
    assert.has_error(function() conc.select() end)
  end)

  it("a bad later case frees the messages of earlier send cases", function()
    local ch = conc.chan(1)
    assert.has_error(function()
      conc.select{{"send", ch, {big = string.rep("x", 1000)}}, {"recv", 1}}
    end)
    assert.are.equal(0, #ch)
  end)

  it("holds its cases' channels while it encodes and waits, whatever " ..
     "the encoding's Lua code drops", function()
    -- A later case's export hook drops an earlier case and collects: the
    -- earlier case's channel was freed under the select, which then sent
    -- into (or read) freed memory: a channel made meanwhile got the
    -- value, or the select waited for good on a ready case. In a task
    -- too, where the select parks with the channels on its stack.
    local out, rc = require("support").run_script([[
      local conc = require("conc")
      package.preload.sel_rebuild = function()
        return {rebuild = function(v) return v end}
      end
      local function round(blocking)
        local cases, fresh = nil, {}
        local hook = setmetatable({}, {__conc_export = function()
          cases[1], cases[2] = nil, nil
          collectgarbage(); collectgarbage()
          for i = 1, 50 do fresh[i] = conc.chan(1) end
          return 1, "sel_rebuild.rebuild"
        end})
        if blocking then -- only case 2 can be chosen, once its sender runs
          local late = conc.chan()
          cases = {{"send", conc.chan(), "x"}, {"recv", late},
                   {"send", conc.chan(), hook}}
          conc.go(function(c) c:send("late") end, late)
        else
          cases = {{"send", conc.chan(1), "x"}, {"send", conc.chan(1), "y"},
                   {"send", conc.chan(1), hook}}
        end
        local i, v = conc.select(cases)
        assert((not blocking and i >= 1 and i <= 3)
          or (blocking and i == 2 and v == "late"), "chose " .. tostring(i))
        for k = 1, #fresh do
          assert(#fresh[k] == 0, "a channel made later got case 1's value")
        end
      end
      for _ = 1, 200 do round(false) end
      local h = conc.go(function(n)
        for _ = 1, n do round(true) end
        return n
      end, 100)
      assert(select(2, h:join()) == 100)
      for _ = 1, 50 do round(true) end
      print("held")
    ]], 60)
    assert.are.equal(0, rc, out)
    assert.matches("held", out)
  end)

  it("works with more cases than fit on the stack", function()
    local chans, cases = {}, {}
    for i = 1, 40 do
      chans[i] = conc.chan(1)
      cases[i] = {"recv", chans[i]}
    end
    chans[33]:send("x")
    assert.are.same({33, "x", true}, {conc.select(cases)})
  end)
end)
