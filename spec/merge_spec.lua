local conc = require("conc")
local support = require("support")

describe("conc.merge", function()
  it("receives every value of every input once, then closes", function()
    local ins = {conc.chan(), conc.chan(4), conc.chan(1)}
    local m = conc.merge(ins)
    for i, ch in ipairs(ins) do
      conc.go(function(ch, i)
        for k = 1, 50 do ch:send(i * 1000 + k) end
        ch:close()
      end, ch, i)
    end
    local seen, n = {}, 0
    for v in m:range() do
      assert.is_nil(seen[v])
      seen[v], n = true, n + 1
    end
    assert.are.equal(150, n)
    assert.are.same({nil, false}, {m:recv()})
  end)

  it("N producers x M inputs x K consumer workers: each value once",
    function()
    local M, N, PER, K = 4, 3, 200, 3
    local ins = {}
    for i = 1, M do ins[i] = conc.chan(i % 2 == 0 and 8 or 0) end
    local m = conc.merge(ins)
    local wg = conc.waitgroup()
    for i = 1, M do
      local left = conc.waitgroup()
      left:add(N)
      for p = 1, N do
        conc.go(function(ch, base, per, left)
          for k = 1, per do ch:send(base + k) end
          left:done()
        end, ins[i], (i * N + p) * PER, PER, left)
      end
      conc.go(function(left, ch) left:wait() ch:close() end, left, ins[i])
    end
    local out = conc.chan(M * N * PER)
    for _ = 1, K do
      wg:add(1)
      conc.go(function(m, out, wg)
        for v in m:range() do out:send(v) end
        wg:done()
      end, m, out, wg)
    end
    assert.is_true(wg:wait(20))
    out:close()
    local seen, n = {}, 0
    for v in out:range() do
      assert.is_nil(seen[v])
      seen[v], n = true, n + 1
    end
    assert.are.equal(M * N * PER, n)
  end)

  it("ends when its context is canceled, inputs still open", function()
    local ctx, cancel = conc.with_cancel(conc.background())
    local a = conc.chan(4)
    local m = conc.merge({a}, ctx)
    a:send(1)
    assert.are.equal(1, m:recv())
    local h = conc.go(function(m) return m:recv() end, m)
    conc.sleep(0.02)
    cancel()
    assert.are.same({nil, false}, {support.join_ok(h)})
    a:send(2)
    assert.are.same({nil, false}, {m:recv()})
  end)

  it("works in conc.select, times out, nests, and is receive-only",
    function()
    local a, b, c = conc.chan(2), conc.chan(2), conc.chan(2)
    local abc = conc.merge({conc.merge({a, b}), c:recv_only()})
    local other = conc.chan()
    assert.are.same({nil, nil, "timeout"}, {abc:recv(0.01)})
    b:send("x")
    local i, v, ok = conc.select{{"recv", other}, {"recv", abc}}
    assert.are.same({2, "x", true}, {i, v, ok})
    a:close(); b:close(); c:close()
    assert.are.same({nil, false}, {abc:recv()})
    assert.has_error(function() abc:send(1) end,
      "conc.chan:send: send on receive-only channel")
    assert.are.same({nil, false}, {conc.merge({}):recv()})
  end)

  it("refuses what is not a list of channels", function()
    assert.has_error(function() conc.merge({1}) end,
      "conc.merge: element #1 is a number, not a conc.chan")
    assert.has_error(function() conc.merge(conc.chan()) end)
    assert.has_error(function() conc.merge({}, 5) end)
  end)

  it("needs no worker or thread per input", function()
    local before = conc.stats().threads
    local ins = {}
    for i = 1, 64 do ins[i] = conc.chan(1) end
    local m = conc.merge(ins)
    -- no thread started (idle pool threads may leave meanwhile: at most)
    assert.is_true(conc.stats().threads <= before)
    assert.are.equal(1, #conc.workers())
    for i = 1, 64 do ins[i]:send(i) ins[i]:close() end
    local sum = 0
    for v in m:range() do sum = sum + v end
    assert.are.equal(64 * 65 / 2, sum)
  end)
  it("never yields a value of a nested merge whose ctx is canceled",
    function()
    for round = 1, 32 do
      local ctx, cancel = conc.with_cancel(conc.background())
      local a, b = conc.chan(8), conc.chan(8)
      local outer = conc.merge({conc.merge({a}, ctx), b})
      for k = 1, 8 do a:send("a" .. k) end
      cancel()
      -- the inner merge reads as closed: outer is as if a were closed
      assert.are.equal("timeout",
        conc.select{{"recv", outer}, timeout = round % 2 * 0.002})
      assert.are.same({nil, nil, "timeout"}, {outer:recv(0.002)})
      b:send("b")
      assert.are.same({1, "b", true}, {conc.select{{"recv", outer}}})
      b:close()
      assert.are.same({nil, false}, {outer:recv(1)})
      assert.are.equal(8, a:len())
    end
  end)

  it("is one case of a select, however many inputs it has", function()
    local ins = {}
    for i = 1, 10 do ins[i] = conc.chan(1) ins[i]:send(i) end
    local m, plain = conc.merge(ins), conc.chan(1)
    plain:send(0)
    local wins = {0, 0}
    for _ = 1, 2000 do
      local i, v = conc.select{{"recv", m}, {"recv", plain}}
      wins[i] = wins[i] + 1
      if v == 0 then plain:send(0) else ins[v]:send(v) end
    end
    for i = 1, 2 do
      assert.is_true(wins[i] > 700 and wins[i] < 1300,
        "wins " .. wins[1] .. " / " .. wins[2])
    end
    -- a closed merged channel is one ready case, not always the first
    local closed, first = conc.merge({}), 0
    for _ = 1, 1000 do
      local i, v, ok = conc.select{{"recv", closed}, {"recv", plain}}
      if i == 1 then
        first = first + 1
        assert.is_false(ok)
      else
        plain:send(v)
      end
    end
    assert.is_true(first > 350 and first < 650, "closed first " .. first)
  end)

  it("refuses more than 4096 channels, nested merges included", function()
    local c, ins = conc.chan(1), {}
    for i = 1, 4096 do ins[i] = c end
    local big = conc.merge(ins)
    local msg = "conc.merge: too many inputs (4096 channels at most, "
      .. "nested merges included)"
    assert.has_error(function() conc.merge({big, c}) end, msg)
    ins[4097] = c
    assert.has_error(function() conc.merge(ins) end, msg)
    local level = {}
    for i = 1, 64 do level[i] = conc.merge({table.unpack(ins, 1, 64)}) end
    assert.has_error(function() conc.merge(level) end, msg)
    level[64] = nil  -- 63 x (64 + 1) = 4095
    local ok = conc.merge(level)
    c:send(5)
    assert.are.equal(5, ok:recv(1))
  end)
end)
