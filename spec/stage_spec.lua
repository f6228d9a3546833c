local conc = require("conc")
local support = require("support")

-- The chapter's generate stage: a worker sending nums, then closing.
local function generate(nums, ctx)
  local out = conc.chan()
  conc.go(function(out, nums, ctx)
    for _, n in ipairs(nums) do
      if not out:send(n, ctx) then break end
    end
    out:close()
  end, out, nums, ctx)
  return out
end

-- Waits (a bounded poll) until only the main script runs.
local function only_main_left()
  local deadline = conc.now() + 5
  while #conc.workers() > 1 and conc.now() < deadline do conc.sleep(0.005) end
  return #conc.workers()
end

describe("conc.stage", function()
  it("generate -> square -> filter prints 4 16 36 64 100, in order",
    function()
    local squared = conc.stage(generate({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}),
      function(n) return n * n end)
    local evens = conc.stage(squared,
      function(n) if n % 2 == 0 then return n end end)
    local got = {}
    for n in evens:range() do got[#got + 1] = n end
    assert.are.same({4, 16, 36, 64, 100}, got)
    assert.are.equal(1, only_main_left())
  end)

  it("with N workers every value is done exactly once", function()
    local nums = {}
    for i = 1, 500 do nums[i] = i end
    local out = conc.stage(generate(nums), function(n) return n * 2 end,
      {workers = 4, buffer = 16})
    assert.are.equal(16, out:cap())
    local seen, n = {}, 0
    for v in out:range() do
      assert.is_nil(seen[v])
      seen[v], n = true, n + 1
    end
    assert.are.equal(500, n)
    for i = 1, 500 do assert.is_true(seen[2 * i]) end
  end)

  it("a canceled pipeline closes and leaves no worker", function()
    local ctx, cancel = conc.with_cancel(conc.background())
    local nums = {}
    for i = 1, 1000 do nums[i] = i end
    local sq = conc.stage(generate(nums, ctx), function(n) return n * n end,
      {ctx = ctx, workers = 3})
    local out = conc.stage(sq, function(n) return n + 1 end, {ctx = ctx})
    local v = out:recv() -- n * n + 1 for some n (3 workers: any order)
    assert.are.equal(0, math.sqrt(v - 1) % 1)
    cancel()
    for _ in out:range() do end -- closed soon, whatever was in flight
    assert.are.equal(1, only_main_left())
  end)

  it("its output is receive-only and travels to workers", function()
    local out = conc.stage(generate({1, 2, 3}), function(n) return -n end)
    assert.has_error(function() out:close() end,
      "conc.chan:close: close of receive-only channel")
    local h = conc.go(function(out)
      local s = 0
      for v in out:range() do s = s + v end
      return s
    end, out)
    assert.are.equal(-6, support.join_ok(h))
  end)

  it("runs fn with its upvalues copied, tables crossing states", function()
    local k = 10
    local out = conc.stage(generate({{x = 1}, {x = 2}}),
      function(t) return {y = t.x * k} end)
    assert.are.same({y = 10}, out:recv())
    assert.are.same({y = 20}, out:recv())
  end)

  it("refuses bad arguments", function()
    local ch = conc.chan()
    assert.has_error(function() conc.stage(1, print) end)
    assert.has_error(function() conc.stage(ch, 1) end)
    assert.has_error(function() conc.stage(ch, print, {workers = 0}) end,
      "conc.stage: workers must be an integer from 1 to 100000")
    -- as a pool's: each worker is a task, all started before it returns
    assert.has_error(function() conc.stage(ch, print, {workers = 1e9}) end,
      "conc.stage: workers must be an integer from 1 to 100000")
    assert.has_error(function() conc.stage(ch, print, {buffer = 2^31}) end,
      "conc.stage: buffer must be an integer from 0 to 2^31-1")
    assert.has_error(function() conc.stage(ch, print, {worker = 2}) end,
      "conc.stage: unknown option 'worker'")
    assert.has_error(function() conc.stage(ch, print, {ctx = 1}) end,
      "conc.stage: ctx must be a conc.ctx")
  end)
end)
