local conc = require("conc")
local support = require("support")

-- The error message of f(...), which must fail.
local function error_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return err
end

-- Every entry of m, collected by range, as a plain table.
local function contents(m)
  local t = {}
  m:range(function(k, v) t[k] = v end)
  return t
end

describe("conc.map", function()
  it("load of an absent key returns nil, false", function()
    local m = conc.map()
    local v, ok = m:load("nope")
    assert.is_nil(v)
    assert.is_false(ok)
  end)

  it("store then load returns the value and true", function()
    local m = conc.map()
    m:store("s", "text")
    m:store(1, 10)
    m:store(2.5, false)
    m:store(true, {a = {b = 1}})
    assert.are.same({"text", true}, {m:load("s")})
    assert.are.same({10, true}, {m:load(1)})
    assert.are.same({false, true}, {m:load(2.5)})
    assert.are.same({{a = {b = 1}}, true}, {m:load(true)})
  end)

  it("a stored nil is present, distinct from an absent key", function()
    local m = conc.map()
    m:store("n", nil)
    local v, ok = m:load("n")
    assert.is_nil(v)
    assert.is_true(ok)
    assert.are.equal(1, #m)
    v, ok = m:load("absent")
    assert.is_nil(v)
    assert.is_false(ok)
  end)

  it("store replaces the value of a present key", function()
    local m = conc.map()
    m:store("k", 1)
    m:store("k", "two")
    assert.are.same({"two", true}, {m:load("k")})
    assert.are.equal(1, m:len())
  end)

  it("a float key with an integer value is the integer key", function()
    local m = conc.map()
    m:store(1.0, "one")
    assert.are.same({"one", true}, {m:load(1)})
    m:store(2, "two")
    assert.are.same({"two", true}, {m:load(2.0)})
    m:store(-0.0, "zero")
    assert.are.same({"zero", true}, {m:load(0)})
    m:store(2^53, "big")
    assert.are.same({"big", true}, {m:load(math.tointeger(2^53))})
    assert.are.equal(4, #m)
    -- the key comes back as an integer, as from a Lua table
    local types = {}
    m:range(function(k) types[#types + 1] = math.type(k) end)
    assert.are.same({"integer", "integer", "integer", "integer"}, types)
  end)

  it("keys of different types or values never collide", function()
    local m = conc.map()
    local keys = {1, "1", 1.5, "1.5", true, "true", false, 0, "", -1,
      math.huge, -math.huge, math.maxinteger, math.mininteger}
    for i, k in ipairs(keys) do m:store(k, i) end
    assert.are.equal(#keys, #m)
    for i, k in ipairs(keys) do assert.are.same({i, true}, {m:load(k)}) end
    local seen = contents(m)
    for i, k in ipairs(keys) do assert.are.equal(i, seen[k]) end
  end)

  it("string keys are binary-safe", function()
    local m = conc.map()
    m:store("a\0b", 1)
    m:store("a\0c", 2)
    m:store(("x"):rep(1000), 3)
    assert.are.same({1, true}, {m:load("a\0b")})
    assert.are.same({2, true}, {m:load("a\0c")})
    assert.are.same({false}, {select(2, m:load("a"))})
    assert.are.same({3, true}, {m:load(("x"):rep(1000))})
  end)

  it("values are copies: later changes on either side are not seen",
    function()
      local m = conc.map()
      local t = {n = 1, list = {1, 2, 3}}
      m:store("t", t)
      t.n = 2
      t.list[1] = "changed"
      local a = m:load("t")
      assert.are.same({n = 1, list = {1, 2, 3}}, a)
      a.n = 99
      local b = m:load("t")
      assert.are.equal(1, b.n)
      assert.is_false(rawequal(a, b))
    end)

  it("conc objects are stored by reference", function()
    local m = conc.map()
    local ch = conc.chan(1)
    m:store("ch", ch)
    m:store("nested", {ch = ch})
    local got = m:load("ch")
    assert.is_true(rawequal(ch, got))
    assert.is_true(rawequal(ch, m:load("nested").ch))
    got:send("through the loaded channel")
    assert.are.equal("through the loaded channel", ch:recv())
  end)

  it("a map stored in a map, or sent on a channel, is the same map",
    function()
      local outer, inner = conc.map(), conc.map()
      outer:store("inner", inner)
      assert.is_true(rawequal(inner, outer:load("inner")))
      local ch = conc.chan(1)
      ch:send(outer)
      assert.is_true(rawequal(outer, ch:recv()))
      assert.are.equal(outer, outer)
      assert.matches("^conc.map: ", tostring(outer))
    end)

  describe("load_or_store", function()
    it("stores when absent and returns the value itself, false", function()
      local m = conc.map()
      local t = {1}
      local actual, loaded = m:load_or_store("k", t)
      assert.is_true(rawequal(t, actual))
      assert.is_false(loaded)
      assert.are.same({{1}, true}, {m:load("k")})
    end)

    it("returns the present value, true, and leaves it", function()
      local m = conc.map()
      m:store("k", "first")
      assert.are.same({"first", true}, {m:load_or_store("k", "second")})
      assert.are.same({"first", true}, {m:load("k")})
    end)

    it("a present nil is loaded, not replaced", function()
      local m = conc.map()
      m:store("k", nil)
      local v, loaded = m:load_or_store("k", 5)
      assert.is_nil(v)
      assert.is_true(loaded)
      assert.are.same({nil, true}, {m:load("k")})
    end)
  end)

  describe("load_and_delete and delete", function()
    it("load_and_delete returns the value, true, and removes it", function()
      local m = conc.map()
      m:store("k", {x = 1})
      assert.are.same({{x = 1}, true}, {m:load_and_delete("k")})
      assert.are.same({nil, false}, {m:load("k")})
      assert.are.equal(0, #m)
    end)

    it("load_and_delete of an absent key returns nil, false", function()
      local v, loaded = conc.map():load_and_delete("k")
      assert.is_nil(v)
      assert.is_false(loaded)
    end)

    it("load_and_delete of a stored nil returns nil, true", function()
      local m = conc.map()
      m:store("k", nil)
      local v, loaded = m:load_and_delete("k")
      assert.is_nil(v)
      assert.is_true(loaded)
      assert.are.equal(0, #m)
    end)

    it("delete removes a key; deleting an absent key is no error",
      function()
        local m = conc.map()
        m:store("a", 1)
        m:store("b", 2)
        m:delete("a")
        m:delete("a")
        m:delete("never")
        assert.are.same({nil, false}, {m:load("a")})
        assert.are.same({b = 2}, contents(m))
      end)
  end)

  describe("swap", function()
    it("of an absent key stores and returns nil, false", function()
      local m = conc.map()
      local prev, loaded = m:swap("k", "new")
      assert.is_nil(prev)
      assert.is_false(loaded)
      assert.are.same({"new", true}, {m:load("k")})
    end)

    it("of a present key returns the previous value, true", function()
      local m = conc.map()
      m:store("k", {old = true})
      assert.are.same({{old = true}, true}, {m:swap("k", "new")})
      assert.are.same({"new", true}, {m:load("k")})
      assert.are.same({"new", true}, {m:swap("k", nil)})
      assert.are.same({nil, true}, {m:load("k")})
    end)
  end)

  describe("compare_and_swap", function()
    it("swaps when the present value equals old", function()
      local m = conc.map()
      m:store("k", 1)
      assert.is_true(m:compare_and_swap("k", 1, 2))
      assert.are.same({2, true}, {m:load("k")})
      assert.is_false(m:compare_and_swap("k", 1, 3))
      assert.are.same({2, true}, {m:load("k")})
    end)

    it("compares strings and booleans by value", function()
      local m = conc.map()
      m:store("s", "abc")
      assert.is_true(m:compare_and_swap("s", "ab" .. "c", ("x"):rep(100)))
      assert.is_true(m:compare_and_swap("s", ("x"):rep(100), false))
      assert.is_false(m:compare_and_swap("s", nil, true))
      assert.is_true(m:compare_and_swap("s", false, true))
      assert.are.same({true, true}, {m:load("s")})
    end)

    it("an integer and a float are different values", function()
      local m = conc.map()
      m:store("k", 1)
      assert.is_false(m:compare_and_swap("k", 1.0, "float"))
      m:store("k", 1.0)
      assert.is_false(m:compare_and_swap("k", 1, "int"))
      assert.is_true(m:compare_and_swap("k", 1.0, "float"))
    end)

    it("compares conc objects by reference", function()
      local m = conc.map()
      local a, b = conc.chan(), conc.chan()
      m:store("k", a)
      assert.is_false(m:compare_and_swap("k", b, "b"))
      assert.is_true(m:compare_and_swap("k", a, b))
      assert.is_true(rawequal(b, m:load("k")))
    end)

    it("tables compare by their encoded contents", function()
      local m = conc.map()
      m:store("k", {1, 2, 3})
      assert.is_true(m:compare_and_swap("k", {1, 2, 3}, {4}))
      assert.is_false(m:compare_and_swap("k", {5}, {6}))
      assert.are.same({{4}, true}, {m:load("k")})
    end)

    it("an absent key never swaps, even with old == nil", function()
      local m = conc.map()
      assert.is_false(m:compare_and_swap("k", nil, 1))
      assert.are.same({nil, false}, {m:load("k")})
      m:store("k", nil)
      assert.is_true(m:compare_and_swap("k", nil, 1))
      assert.are.same({1, true}, {m:load("k")})
    end)
  end)

  describe("compare_and_delete", function()
    it("deletes only when the present value equals old", function()
      local m = conc.map()
      m:store("k", "v")
      assert.is_false(m:compare_and_delete("k", "w"))
      assert.are.equal(1, #m)
      assert.is_true(m:compare_and_delete("k", "v"))
      assert.are.same({nil, false}, {m:load("k")})
      assert.is_false(m:compare_and_delete("k", "v"))
    end)

    it("an absent key is not deleted with old == nil; a stored nil is",
      function()
        local m = conc.map()
        assert.is_false(m:compare_and_delete("k", nil))
        m:store("k", nil)
        assert.is_true(m:compare_and_delete("k", nil))
        assert.are.equal(0, #m)
      end)
  end)

  describe("len, #, clear", function()
    it("count entries as they come and go", function()
      local m = conc.map()
      assert.are.equal(0, #m)
      for i = 1, 1000 do m:store(i, i) end
      assert.are.equal(1000, #m)
      assert.are.equal(1000, m:len())
      for i = 1, 1000 do m:store(i, -i) end
      assert.are.equal(1000, #m)
      for i = 1, 1000, 2 do m:delete(i) end
      assert.are.equal(500, #m)
      for i = 2, 1000, 2 do assert.are.same({-i, true}, {m:load(i)}) end
    end)

    it("clear removes every entry and the map stays usable", function()
      local m = conc.map()
      for i = 1, 100 do m:store("k" .. i, {i}) end
      m:clear()
      assert.are.equal(0, #m)
      assert.are.same({nil, false}, {m:load("k1")})
      assert.are.same({}, contents(m))
      m:store("after", 1)
      assert.are.same({after = 1}, contents(m))
      m:clear()
      m:clear()
      assert.are.equal(0, #m)
    end)
  end)

  describe("range", function()
    it("calls fn(k, v) once for each entry", function()
      local m = conc.map()
      local want = {}
      for i = 1, 200 do
        want["k" .. i] = {i = i}
        m:store("k" .. i, {i = i})
      end
      m:store(false, nil)
      local got, calls, saw_nil = {}, 0, false
      m:range(function(k, v)
        calls = calls + 1
        if k == false then
          saw_nil = v == nil
        else
          assert.is_nil(got[k])
          got[k] = v
        end
      end)
      assert.are.equal(201, calls)
      assert.is_true(saw_nil)
      assert.are.same(want, got)
    end)

    it("stops when fn returns false; nil and other values go on",
      function()
        local m = conc.map()
        for i = 1, 50 do m:store(i, i) end
        local calls = 0
        m:range(function()
          calls = calls + 1
          if calls == 10 then return false end
        end)
        assert.are.equal(10, calls)
        calls = 0
        m:range(function()
          calls = calls + 1
          return true
        end)
        assert.are.equal(50, calls)
      end)

    it("fn may call the map's methods: no deadlock, a fixed snapshot",
      function()
        local m = conc.map()
        for i = 1, 100 do m:store(i, i) end
        local visited = 0
        m:range(function(k, v)
          visited = visited + 1
          m:store(k + 1000, v)        -- new keys: not in this snapshot
          m:delete(k % 100 + 1)       -- deleted: still in this snapshot
          assert.are.same({v, true}, {m:load(k + 1000)})
          m:range(function() return false end)
        end)
        assert.are.equal(100, visited)
        assert.are.equal(100, #m)     -- 1..100 deleted, 1001..1100 added
        for i = 1, 100 do assert.are.same({i, true}, {m:load(i + 1000)}) end
      end)

    it("an error in fn propagates and leaves the map usable", function()
      local m = conc.map()
      for i = 1, 10 do m:store(i, {i}) end
      local err = error_of(m.range, m, function(k)
        if k == 5 then error("stop here", 0) end
      end)
      assert.are.equal("stop here", err)
      m:store(11, 11)
      m:clear()
      assert.are.equal(0, #m)
    end)

    it("of an empty map never calls fn", function()
      conc.map():range(function() error("called") end)
    end)
  end)

  describe("misuse raises an error naming the function", function()
    local keyed = {"load", "store", "load_or_store", "load_and_delete",
      "delete", "swap", "compare_and_swap", "compare_and_delete"}

    it("a key that is not a string, number or boolean", function()
      local m = conc.map()
      for _, name in ipairs(keyed) do
        for _, bad in ipairs({{}, print, coroutine.create(print), m}) do
          assert.are.equal(("conc.map:%s: key must be a string, number " ..
            "or boolean, got %s"):format(name, type(bad)),
            error_of(m[name], m, bad, 1, 2))
        end
        assert.are.equal(("conc.map:%s: key must be a string, number or " ..
          "boolean, got nil"):format(name), error_of(m[name], m, nil, 1, 2))
      end
      assert.are.equal("conc.map:load: key must be a string, number or " ..
        "boolean, got no value", error_of(m.load, m))
      assert.are.equal(0, #m)
    end)

    it("a NaN key", function()
      local m = conc.map()
      for _, name in ipairs(keyed) do
        assert.are.equal(("conc.map:%s: key is NaN"):format(name),
          error_of(m[name], m, 0 / 0, 1, 2))
      end
    end)

    it("a value the codec cannot transfer, with its message", function()
      local m = conc.map()
      local co = coroutine.create(print)
      assert.are.equal("conc.map:store: value: cannot transfer a coroutine",
        error_of(m.store, m, "k", co))
      assert.are.equal("conc.map:load_or_store: value, field 'f': cannot " ..
        "transfer a coroutine", error_of(m.load_or_store, m, "k", {f = co}))
      assert.are.equal("conc.map:swap: value: cannot transfer a table " ..
        "with a metatable", error_of(m.swap, m, "k", setmetatable({}, {})))
      assert.are.equal("conc.map:compare_and_swap: argument #2: cannot " ..
        "transfer a coroutine", error_of(m.compare_and_swap, m, "k", co, 1))
      assert.are.equal("conc.map:compare_and_swap: argument #3: cannot " ..
        "transfer a coroutine", error_of(m.compare_and_swap, m, "k", 1, co))
      assert.are.equal("conc.map:compare_and_delete: argument #2: cannot " ..
        "transfer a coroutine", error_of(m.compare_and_delete, m, "k", co))
      -- nothing was stored by the failed calls
      assert.are.equal(0, #m)
    end)

    it("a failed compare_and_swap leaves the value in place", function()
      local m = conc.map()
      m:store("k", 1)
      error_of(m.compare_and_swap, m, "k", 1, coroutine.create(print))
      assert.are.same({1, true}, {m:load("k")})
    end)

    it("a missing value (nil must be passed explicitly)", function()
      local m = conc.map()
      assert.are.equal("conc.map:store: value expected",
        error_of(m.store, m, "k"))
      assert.are.equal("conc.map:load_or_store: value expected",
        error_of(m.load_or_store, m, "k"))
      assert.are.equal("conc.map:swap: value expected",
        error_of(m.swap, m, "k"))
      assert.are.equal("conc.map:compare_and_swap: old value expected",
        error_of(m.compare_and_swap, m, "k"))
      assert.are.equal("conc.map:compare_and_swap: new value expected",
        error_of(m.compare_and_swap, m, "k", 1))
      assert.are.equal("conc.map:compare_and_delete: old value expected",
        error_of(m.compare_and_delete, m, "k"))
      assert.are.equal(0, #m)
    end)

    it("range without a function", function()
      local m = conc.map()
      assert.matches(
        "conc.map:range: bad argument #1 (function expected, got no value)",
        error_of(function() m:range() end), 1, true)
    end)

    it("a method called on something that is not a map", function()
      local m = conc.map()
      assert.matches("conc.map expected, got conc.chan",
        error_of(m.load, conc.chan(), "k"), 1, true)
      assert.matches("conc.map expected, got nil",
        error_of(m.len, nil), 1, true)
    end)
  end)
end)

describe("conc.map between workers", function()
  -- Starts n workers running fn(m, id, ...), released together.
  local function start_workers(n, fn, ...)
    local go = conc.chan()
    local hs = {}
    for id = 1, n do
      hs[id] = conc.go(function(f, gate, ...)
        gate:recv()
        return f(...)
      end, fn, go, id, ...)
    end
    for _ = 1, n do go:send(true) end
    return hs
  end

  it("a worker that runs out of memory in range leaves range working " ..
     "for later tasks", function()
    -- range's snapshot metatable, made on a state's first range, was
    -- registered empty and then filled: a memory error in between left
    -- it without __close, and every later range in that state failed
    -- ("got a non-closable value").
    local m = conc.map()
    for i = 1, 2000 do m:store("k" .. i, {i, tostring(i)}) end
    local failed = 0
    for limit = 1024, 4096, 64 do
      local ok, err = conc.go({memory_limit = limit}, function(m)
        local kept = {}  -- every value kept: 2000 tables cannot fit
        m:range(function(_, v) kept[#kept + 1] = v end)
        return #kept
      end, m):join()
      if not ok then
        failed = failed + 1
        assert.matches("ran out of memory", tostring(err))
      end
    end
    assert(failed > 0, "no limit was small enough")
    for _ = 1, 10 do
      assert.equal(2000, support.join_ok(conc.go(function(m)
        local n = 0
        m:range(function() n = n + 1 end)
        return n
      end, m)))
    end
  end)

  it("is shared by reference with a worker", function()
    local m = conc.map()
    m:store("from main", 1)
    local h = conc.go(function(map)
      map:store("from worker", 2)
      return map:load("from main"), map
    end, m)
    local _, v, same = h:join()
    assert.are.equal(1, v)
    assert.is_true(rawequal(m, same))
    assert.are.same({2, true}, {m:load("from worker")})
  end)

  it("a channel stored by a worker is the main state's channel", function()
    local m, ch = conc.map(), conc.chan(1)
    support.join_ok(conc.go(function(map, c) map:store("ch", c) end, m, ch))
    assert.is_true(rawequal(ch, m:load("ch")))
  end)

  it("4 workers x 2000 compare_and_swap increments: exactly 8000",
    function()
      local m = conc.map()
      m:store("n", 0)
      local hs = start_workers(4, function(_, map)
        local retries = 0
        for _ = 1, 2000 do
          while true do
            local v = map:load("n")
            if map:compare_and_swap("n", v, v + 1) then break end
            retries = retries + 1
          end
        end
        return retries
      end, m)
      for _, h in ipairs(hs) do support.join_ok(h) end
      assert.are.same({8000, true}, {m:load("n")})
    end)

  it("4 workers storing disjoint keys: every key present, len exact",
    function()
      local m = conc.map()
      local hs = start_workers(4, function(id, map)
        for i = 1, 2500 do map:store(id .. ":" .. i, {id, i}) end
      end, m)
      for _, h in ipairs(hs) do support.join_ok(h) end
      assert.are.equal(10000, #m)
      for id = 1, 4 do
        for i = 1, 2500 do
          assert.are.same({{id, i}, true}, {m:load(id .. ":" .. i)})
        end
      end
      local n = 0
      m:range(function() n = n + 1 end)
      assert.are.equal(10000, n)
    end)

  it("load_or_store races: every worker sees the same winner", function()
    local m = conc.map()
    local keys = 500
    local hs = start_workers(4, function(id, map, nkeys)
      local seen, won = {}, 0
      for k = 1, nkeys do
        local v, loaded = map:load_or_store(k, id)
        if not loaded then won = won + 1 end
        seen[k] = v
        -- a reader sees the winner too
        assert(map:load(k) == v, "load disagrees with load_or_store")
      end
      return seen, won
    end, m, keys)
    local views, total_won = {}, 0
    for i, h in ipairs(hs) do
      local seen, won = support.join_ok(h)
      views[i], total_won = seen, total_won + won
    end
    assert.are.equal(keys, total_won)    -- one store won per key
    for k = 1, keys do
      local winner = m:load(k)
      for i = 1, 4 do assert.are.equal(winner, views[i][k]) end
    end
  end)

  it("concurrent readers never see a torn or foreign value", function()
    local m = conc.map()
    for k = 1, 50 do m:store(k, {k = k, n = 0, check = k * 1000}) end
    local stop = conc.chan()
    local writers = start_workers(2, function(id, map)
      for round = 1, 2000 do
        local k = (round * id) % 50 + 1
        map:swap(k, {k = k, n = round, check = k * 1000 + round})
      end
    end, m)
    local readers = start_workers(2, function(_, map, done)
      local loads = 0
      repeat
        for k = 1, 50 do
          local v, ok = map:load(k)
          assert(ok and v.k == k and v.check == k * 1000 + v.n,
            "bad value for key " .. k)
          loads = loads + 1
        end
        local open = select(2, done:try_recv()) ~= false
      until not open or loads > 1e6
      return loads
    end, m, stop)
    for _, h in ipairs(writers) do support.join_ok(h) end
    stop:close()
    for _, h in ipairs(readers) do
      assert.is_true(support.join_ok(h) >= 50)
    end
  end)

  it("range sees a consistent snapshot while a worker stores", function()
    local m = conc.map()
    local half, resume = conc.chan(), conc.chan()
    local n = 4000
    -- Stores 1..n in order: any snapshot holds exactly 1..j for some j.
    local h = conc.go(function(map, count, at_half, go_on)
      for i = 1, count do
        map:store(i, i * 2)
        if i == count // 2 then
          at_half:send(true)
          go_on:recv()
        end
      end
    end, m, n, half, resume)
    local function check_prefix()
      local max, count = 0, 0
      m:range(function(k, v)
        assert.are.equal(k * 2, v)
        count = count + 1
        if k > max then max = k end
      end)
      assert.are.equal(max, count, "a snapshot with a hole")
      return count
    end
    half:recv()
    assert.are.equal(n // 2, check_prefix())  -- the writer is paused here
    resume:send(true)
    local snapshots, last = 0, n // 2
    while not h:wait(0) do
      local c = check_prefix()
      assert.is_true(c >= last, "a snapshot went back in time")
      last, snapshots = c, snapshots + 1
    end
    support.join_ok(h)
    assert.are.equal(n, check_prefix())
  end)

  it("range in one worker while others store and delete", function()
    local m = conc.map()
    for i = 1, 200 do m:store(i, i) end
    local done = conc.chan()
    local writers = start_workers(2, function(id, map)
      for round = 1, 3000 do
        local k = (round % 200) + 1
        if id == 1 then map:store(k + 200, round) else map:delete(k + 200) end
      end
    end, m)
    local ranger = conc.go(function(map, stop)
      local ranges = 0
      repeat
        local base = 0
        map:range(function(k, v)
          if k >= 1 and k <= 200 then
            assert(v == k, "base entry changed")
            base = base + 1
          end
          map:store(-1, ranges)      -- writes from inside fn: no deadlock
        end)
        assert(base == 200, "base entries missing: " .. base)
        ranges = ranges + 1
        local open = select(2, stop:try_recv()) ~= false
      until not open
      return ranges
    end, m, done)
    for _, h in ipairs(writers) do support.join_ok(h) end
    done:close()
    assert.is_true(support.join_ok(ranger) >= 1)
  end)

  it("outlives the handle that created it while a worker holds it",
    function()
      local carrier = conc.chan(1)
      do
        local m = conc.map()
        m:store("kept", {1, 2})
        carrier:send(m)
      end
      collectgarbage()
      collectgarbage()
      local h = conc.go(function(c) return c:recv():load("kept") end, carrier)
      assert.are.same({true, {1, 2}, true}, {h:join()})
    end)
end)
