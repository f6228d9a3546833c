local conc = require("conc")

-- Sends v through a channel within this state, and through a worker (a
-- different lua_State) and back.
local function local_trip(v)
  local ch = conc.chan(1)
  ch:send(v)
  return (ch:recv())
end

local function worker_trip(...)
  local r = table.pack(conc.go(function(...) return ... end, ...):join())
  assert(r[1], r[2])
  return table.unpack(r, 2, r.n)
end

describe("the codec", function()
  for _, trip in ipairs({{"in one state", local_trip},
                         {"across states", worker_trip}}) do
    local name, roundtrip = trip[1], trip[2]

    describe(name, function()
      it("keeps nil, booleans and strings", function()
        assert.is_nil(roundtrip(nil))
        assert.is_true(roundtrip(true))
        assert.is_false(roundtrip(false))
        assert.are.equal("", roundtrip(""))
        assert.are.equal("hello", roundtrip("hello"))
      end)

      it("keeps integers and floats distinct", function()
        for _, v in ipairs({0, 1, -1, math.maxinteger, math.mininteger, 3.0,
                            -0.5, 1e300, math.huge, -math.huge}) do
          local r = roundtrip(v)
          assert.are.equal(v, r)
          assert.are.equal(math.type(v), math.type(r))
        end
        local nan = roundtrip(0 / 0)
        assert.is_true(nan ~= nan)
      end)

      it("keeps binary strings with embedded zeros, short and long", function()
        local short = "a\0b\0\255"
        local long = string.rep("x\0y", 10000)
        assert.are.equal(short, roundtrip(short))
        assert.are.equal(long, roundtrip(long))
      end)

      it("carries integers of every size inside tables, and big tables",
        function()
          -- Integers travel as zigzag varints (1 to 10 bytes); a table's
          -- hash count is written after its entries, and a count past
          -- 127 needs more than the one byte kept for it.
          local ints = {0, 1, -1, 63, -64, 64, -65, 127, 128, 2^31 // 1,
                        -(2^31 // 1), 2^53 // 1, math.maxinteger,
                        math.mininteger}
          local big = {inner = {}}
          for i = 1, 300 do
            big["k" .. i] = i * 7919
            big.inner[i] = {i, -i}
          end
          for i = 1, 200 do big.inner["h" .. i] = i end
          big.after = "still here"
          local r = roundtrip({ints = ints, big = big, tail = {x = 1}})
          assert.are.same(ints, r.ints)
          for i, v in ipairs(ints) do
            assert.are.equal(math.type(v), math.type(r.ints[i]))
          end
          assert.are.same(big, r.big)
          assert.are.same({x = 1}, r.tail)
        end)

      it("copies nested tables", function()
        local t = {1, 2, {3, {4, "five"}}, k = {x = 1.5, [true] = "t"},
                   [10] = "sparse", [2.5] = "float key"}
        assert.are.same(t, roundtrip(t))
      end)

      it("preserves shared subtables and cycles", function()
        local shared = {v = 1}
        local t = {a = shared, b = shared}
        t.self = t
        shared.back = t
        local r = roundtrip(t)
        assert.is_true(rawequal(r.a, r.b))
        assert.is_true(rawequal(r.self, r))
        assert.is_true(rawequal(r.a.back, r))
        assert.are.equal(1, r.a.v)
      end)

      it("preserves the identity of many shared tables", function()
        local parts, t = {}, {}
        for i = 1, 20 do parts[i] = {i} end
        for i = 1, 20 do t[i] = parts[i]; t["again" .. i] = parts[21 - i] end
        local r = roundtrip(t)
        for i = 1, 20 do
          assert.are.equal(i, r[i][1])
          assert.is_true(rawequal(r[i], r["again" .. (21 - i)]))
        end
      end)

      it("copies arrays with holes and integer keys in any part", function()
        local holes = {1, 2, nil, 4, nil, nil, 7, x = "x", [10] = 10}
        local backwards = {}
        for i = 5, 1, -1 do backwards[i] = i * 10 end  -- in the hash part
        backwards.name = "b"
        local r = roundtrip({holes = holes, backwards = backwards,
                             neg = {[0] = 0, [-1] = -1, 1}})
        assert.are.same(holes, r.holes)
        assert.are.same(backwards, r.backwards)
        assert.are.same({[0] = 0, [-1] = -1, 1}, r.neg)
      end)

      it("tables as keys", function()
        local k = {}
        local t = {[k] = "v", k = k}
        local r = roundtrip(t)
        assert.are.equal("v", r[r.k])
      end)

      it("copies Lua functions with their upvalues", function()
        local n, tbl = 10, {step = 5}
        local function add(x) return x + n + tbl.step end
        local f = roundtrip(add)
        assert.are.equal(16, f(1))
      end)

      it("sends a function again with its upvalues as they are then, and "
         .. "does not keep it alive", function()
        local n = 1
        local function add(x) return x + n end
        assert.are.equal(2, roundtrip(add)(1))
        n = 5
        assert.are.equal(6, roundtrip(add)(1))  -- the same closure again
        assert.are.equal(7, roundtrip(function(x) return x + n + 1 end)(1))
        local watch = setmetatable({}, {__mode = "k"})
        do
          local function temp() return n end
          watch[temp] = true
          assert.are.equal(5, roundtrip(temp)())
        end
        collectgarbage()
        collectgarbage()
        assert.is_nil(next(watch))  -- sent, then collected
      end)

      it("copies recursive local functions", function()
        local function fact(k) return k <= 1 and 1 or k * fact(k - 1) end
        assert.are.equal(120, roundtrip(fact)(5))
      end)

      it("keeps two functions sharing a table pointing at one copy", function()
        local state = {count = 0}
        local function inc() state.count = state.count + 1 end
        local function get() return state.count end
        local r = roundtrip({inc = inc, get = get})
        r.inc()
        r.inc()
        assert.are.equal(2, r.get())
      end)

      it("binds _ENV to the receiver's globals", function()
        local f = roundtrip(function() return type(print), type(string) end)
        assert.are.same({"function", "table"}, {f()})
      end)

      it("sends module functions and tables by name", function()
        local r = roundtrip({fmt = string.format, str = string, p = print,
                             sel = conc.select, mod = conc})
        assert.are.equal("x=1", r.fmt("x=%d", 1))
        assert.are.equal(string.format, r.fmt)
        assert.are.equal(string, r.str)
        assert.are.equal(print, r.p)
        assert.are.equal(conc.select, r.sel)
      end)

      it("carries conc objects by reference", function()
        local ch = conc.chan(1)
        local r = roundtrip({ch = ch})
        r.ch:send("through the copy")
        assert.are.equal("through the copy", ch:recv())
        assert.is_true(r.ch == ch)
      end)
    end)
  end

  -- (a channel carries one value: this one is for workers only)
  it("carries several values at once across states", function()
    assert.are.same({1, nil, "three", n = 3},
      table.pack(worker_trip(1, nil, "three")))
  end)

  it("the conc module arrives whole, with its Lua-written functions",
    function()
      -- conc and conc.core are one table under two names: it must travel
      -- as "conc" (the shorter) so that conc.pool exists on arrival.
      for _ = 1, 20 do
        local h = conc.go(function() return type(conc.pool) end)
        assert.are.same({true, "function"}, {h:join()})
      end
    end)

  it("module functions arrive as the receiver's own", function()
    local h = conc.go(function(f, t, c)
      return f == string.format, t == string, c == require("conc")
    end, string.format, string, conc)
    assert.are.same({true, true, true, true}, {h:join()})
  end)

  describe("rejects, before sending anything", function()
    local function rejects(v, message)
      local ch = conc.chan(1)
      local ok, err = pcall(ch.send, ch, v)
      assert.is_false(ok)
      assert.are.equal(message, err)
      assert.are.equal(0, #ch)
    end

    it("coroutines", function()
      rejects(coroutine.create(print),
        "conc.chan:send: value: cannot transfer a coroutine")
    end)

    it("foreign userdata, with the path to it", function()
      rejects({cfg = {cb = io.stdout}},
        "conc.chan:send: value, field 'cfg.cb': cannot transfer a userdata")
      rejects({1, {2, io.stdout}},
        "conc.chan:send: value, field '[2][2]': cannot transfer a userdata")
      rejects({["a key"] = io.stdout},
        "conc.chan:send: value, field '[\"a key\"]': " ..
        "cannot transfer a userdata")
    end)

    it("tables with metatables", function()
      rejects({x = setmetatable({}, {})},
        "conc.chan:send: value, field 'x': " ..
        "cannot transfer a table with a metatable")
    end)

    it("C functions that belong to no loaded module", function()
      rejects(coroutine.wrap(function() end),
        "conc.chan:send: value: cannot transfer a C function " ..
        "(it belongs to no loaded module)")
    end)

    it("bad keys", function()
      rejects({[io.stdout] = 1},
        "conc.chan:send: value, a key: cannot transfer a userdata")
    end)

    it("bad upvalues, naming them", function()
      local co = coroutine.create(print)
      rejects(function() return co end,
        "conc.chan:send: value, upvalue 'co': cannot transfer a coroutine")
      local cfg = {cb = io.stderr}
      rejects({f = function() return cfg end},
        "conc.chan:send: value, field 'f', upvalue 'cfg', field 'cb': " ..
        "cannot transfer a userdata")
    end)

    it("conc.go arguments, numbered", function()
      local ok, err = pcall(conc.go, function() end, 1,
                            {cfg = {cb = io.stdout}})
      assert.is_false(ok)
      assert.are.equal(
        "conc.go: argument #3, field 'cfg.cb': cannot transfer a userdata", err)
    end)

    it("tables nested too deeply", function()
      local t = {}
      local cur = t
      for _ = 1, 300 do cur.next = {}; cur = cur.next end
      local ok, err = pcall(local_trip, t)
      assert.is_false(ok)
      assert.matches("cannot transfer a table nested too deeply", err, 1, true)
    end)

    it("and nothing is retained by a failed encode", function()
      local ch = conc.chan(1)
      for _ = 1, 100 do
        pcall(ch.send, ch, {conc.chan(), io.stdout})
      end
      assert.are.equal(0, #ch)
    end)
  end)
end)
