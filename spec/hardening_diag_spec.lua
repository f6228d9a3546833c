-- Issue 11, hardening of diagnostics and limits: integer counts, named
-- limits, huge timeouts, what each blocking call calls itself, the
-- complete worker list, and timers kept alive by their channel.
local conc = require("conc")
local support = require("support")

local function raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.matches(pattern, tostring(err), 1, true)
end

describe("integer counts", function()
  it("select takes n = 2.0 as 2", function()
    local ch = conc.chan(1)
    ch:send("x")
    local i, v, ok = conc.select{{"recv", ch}, nil, n = 2.0}
    assert.equals(1, i)
    assert.equals("x", v)
    assert.is_true(ok)
    -- and still refuses what is no integer
    raises("n must be a non-negative integer",
           conc.select, {n = 2.5, default = true})
  end)

  it("chan capacity, wg:add and memory_limit take integral floats", function()
    assert.equals(2, conc.chan(2.0):cap())
    local wg = conc.waitgroup()
    wg:add(3.0)
    assert.equals(3, wg:count())
    local h = conc.go({memory_limit = 64.0 * 1024 * 1024}, function()
      return 1
    end)
    assert.equals(1, support.join_ok(h))
  end)
end)

describe("limits are named", function()
  it("in select's refusal of too many cases", function()
    raises("4096 at most", conc.select, {n = 4097})
  end)

  it("in the channel capacity's refusal", function()
    raises("2^31-1", conc.chan, 2 ^ 31)
  end)

  it("in the codec's refusal of deep nesting", function()
    local t = {}
    for _ = 1, 250 do t = {t} end
    raises("200 levels at most", conc.chan(1).send, conc.chan(1), t)
    local f = function() return 0 end
    for _ = 1, 250 do
      local g = f
      f = function() return g() end
    end
    raises("200 levels at most", conc.go, f)
  end)
end)

describe("conc.workers()", function()
  it("lists every worker and the main script, past 256", function()
    local n = 300
    local wg, gate = conc.waitgroup(), conc.chan()
    local hs, want = {}, {}
    wg:add(n)
    for k = 1, n do
      hs[k] = conc.go(function(g, w)
        w:done()
        g:recv()
      end, gate, wg)
      want[hs[k]:id()] = true
    end
    wg:wait()
    local seen, main = {}, 0
    for _, w in ipairs(conc.workers()) do
      if w.id == 0 then main = main + 1
      elseif want[w.id] then
        assert.is_nil(seen[w.id], "worker " .. w.id .. " listed twice")
        seen[w.id] = true
      end
    end
    gate:close()
    for k = 1, n do support.join_ok(hs[k]) end
    local count = 0
    for id in pairs(want) do
      assert.is_true(seen[id], "worker " .. id .. " missing")
      count = count + 1
    end
    assert.equals(n, count)
    assert.equals(1, main)
  end)
end)
