local conc = require("conc")
local support = require("support")

describe("conc.atomic", function()
  it("load, store, add, swap, compare_and_swap", function()
    local a = conc.atomic()
    assert.are.equal(0, a:load())
    a:store(5)
    assert.are.equal(7, a:add(2))
    assert.are.equal(6, a:add(-1))
    assert.are.equal(7, a:add())       -- delta defaults to 1
    assert.are.equal(7, a:swap(10))    -- the old value
    assert.is_false(a:compare_and_swap(7, 1))
    assert.is_true(a:compare_and_swap(10, 1))
    assert.are.equal(1, a:load())
    assert.are.equal(-3, conc.atomic(-3):load())
  end)

  it("wraps around as Go's does", function()
    local a = conc.atomic(math.maxinteger)
    assert.are.equal(math.mininteger, a:add(1))
  end)

  it("misuse raises", function()
    local a = conc.atomic()
    assert.has_error(function() conc.atomic(1.5) end)
    assert.has_error(function() a:store("x") end)
    assert.has_error(function() a:add(0.5) end)
    assert.has_error(function() a:compare_and_swap(1) end)
    assert.has_error(function() a.load(conc.mutex()) end)
  end)

  it("N workers adding see one value: an exact count", function()
    local a = conc.atomic()
    local wg = conc.waitgroup()
    for _ = 1, 8 do
      wg:go(function(a) for _ = 1, 1000 do a:add(1) end end, a)
    end
    assert.is_true(wg:wait(30))
    assert.are.equal(8000, a:load())
  end)

  it("crosses states by reference (channel, map, conc.go)", function()
    local a = conc.atomic(1)
    local m = conc.map()
    m:store("a", a)
    assert.are.equal(a, m:load("a"))
    support.join_ok(conc.go(function(m) m:load("a"):store(99) end, m))
    assert.are.equal(99, a:load())
  end)
end)

describe("waitgroup:go", function()
  it("adds, runs fn(...) in a worker, and is done when it returns",
    function()
      local wg = conc.waitgroup()
      local out = conc.chan(10)
      for i = 1, 10 do wg:go(function(out, i) out:send(i * i) end, out, i) end
      assert.is_true(wg:wait(10))
      assert.are.equal(0, wg:count())
      local sum = 0
      for _ = 1, 10 do sum = sum + out:recv() end
      assert.are.equal(385, sum)
    end)

  it("is done when fn raises; the handle reports the error", function()
    local wg = conc.waitgroup()
    local h = wg:go(function() error("boom") end)
    assert.is_true(wg:wait(10))
    local ok, err = h:join()
    assert.is_false(ok)
    assert.matches("boom", err)
  end)

  it("returns a handle whose join gives fn's results", function()
    local wg = conc.waitgroup()
    local h = wg:go(function(x) return x + 1 end, 41)
    assert.are.same({true, 42}, {h:join()})
    assert.is_true(wg:wait())
  end)

  it("an argument that cannot travel raises before anything is added",
    function()
      local wg = conc.waitgroup()
      assert.has_error(function()
        wg:go(function() end, coroutine.create(print))
      end)
      assert.are.equal(0, wg:count())
      assert.has_error(function() wg:go(42) end)
    end)
end)

describe("conc.defer", function()
  it("calls fn(...) when the scope ends, with the arguments of then",
    function()
      local log = {}
      local x = 1
      do
        local _ <close> = conc.defer(function(v) log[#log + 1] = v end, x)
        x = 2
        log[#log + 1] = "body"
      end
      assert.are.equal(2, x)
      assert.are.same({"body", 1}, log)
    end)

  it("runs on error, in reverse order, once", function()
    local log = {}
    local function add(v) log[#log + 1] = v end
    local ok = pcall(function()
      local _ <close> = conc.defer(add, "first")
      local _ <close> = conc.defer(add, "second")
      error("boom")
    end)
    assert.is_false(ok)
    assert.are.same({"second", "first"}, log)
    local d = conc.defer(add, "x")
    getmetatable(d).__close(d)
    getmetatable(d).__close(d)
    assert.are.same({"second", "first", "x"}, log)
  end)

  it("keeps nil arguments and raises on a non-function", function()
    local got
    do
      local _ <close> = conc.defer(function(...) got = select("#", ...) end,
        nil, nil)
    end
    assert.are.equal(2, got)
    assert.has_error(function() conc.defer(42) end,
      "conc.defer: bad argument #1 (function expected, got number)")
  end)

  it("a mutex unlocked by defer, as Go's defer mu.Unlock()", function()
    local mu = conc.mutex()
    pcall(function()
      mu:lock()
      local _ <close> = conc.defer(mu.unlock, mu)
      error("x")
    end)
    assert.is_true(mu:try_lock())
    mu:unlock()
  end)
end)
