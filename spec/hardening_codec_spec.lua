-- Issue 11, the codec's points: shared upvalues (3), _ENV (4), modules
-- by name (5) and error values of workers (15).
local conc = require("conc")
local support = require("support")
local join_ok = support.join_ok

-- A counter: two closures over one local.
local function counter()
  local n = 0
  return function() n = n + 1 end, function() return n end
end

describe("shared upvalues (point 3)", function()
  it("stay shared for two closures in one table sent on a channel", function()
    local ch = conc.chan(1)
    local inc, get = counter()
    ch:send({inc = inc, get = get})
    local t = ch:recv()
    t.inc()
    t.inc()
    assert.equal(2, t.get())
  end)

  it("stay shared between conc.go's function and its arguments", function()
    for _ = 1, 20 do
      local inc, get = counter()
      local h = conc.go(function(g) inc() inc() inc() return g() end, get)
      assert.equal(3, join_ok(h))
    end
  end)

  it("stay shared with a closure nested in an upvalue", function()
    local n = 0
    local function get() return n end
    local function inc() n = n + 1 return get end  -- get is inc's upvalue
    local h = conc.go(function()
      local g = inc()
      inc()
      return g()
    end)
    assert.equal(2, join_ok(h))
  end)

  it("stay shared through a cycle (an upvalue holds a table holding a "
     .. "closure over that upvalue)", function()
    local t = {}
    t.get = function() return t end
    local function swap(v) t = v end
    local ch = conc.chan(1)
    ch:send({t.get, swap})
    local fs = ch:recv()
    fs[2]("new")
    assert.equal("new", fs[1]())
  end)

  it("stay shared in join's results", function()
    local h = conc.go(function()
      local n = 10
      return function() n = n + 1 end, function() return n end
    end)
    local _, inc, get = h:join()
    inc()
    assert.equal(11, get())
  end)

  it("stay shared through a conc.map store", function()
    local m = conc.map()
    local inc, get = counter()
    m:store("k", {inc, get})
    local fs = m:load("k")
    fs[1]()
    assert.equal(1, fs[2]())
  end)

  it("are not shared between two messages", function()
    local ch = conc.chan(2)
    local inc, get = counter()
    ch:send(inc)
    ch:send(get)
    local inc2, get2 = ch:recv(), ch:recv()
    inc2()
    assert.equal(0, get2())
  end)
end)

describe("_ENV (point 4)", function()
  it("of a sandboxed function arrives as a copy of the sandbox", function()
    local sandbox = {x = 42}
    local f = load("return os, x", "=sandboxed", "t", sandbox)
    local h = conc.go(function(g)
      local os_, x = g()
      return os_ == nil, x
    end, f)
    local no_os, x = join_ok(h)
    assert.is_true(no_os)
    assert.equal(42, x)
  end)

  it("under local _ENV = t arrives as a copy of t", function()
    local t = {tag = "mine"}
    local f
    do
      -- luacheck 1.1 does not resolve names through a local _ENV
      local _ENV = t  -- luacheck: ignore 211
      f = function() return tag, print end  -- luacheck: ignore 113
    end
    local ch = conc.chan(1)
    ch:send(f)
    local tag, p = ch:recv()()
    assert.equal("mine", tag)
    assert.is_nil(p)
  end)

  it("keeps sharing and cycles inside the sandbox, and the sender's "
     .. "globals in it become the receiver's", function()
    local sandbox = {}
    sandbox.self = sandbox
    sandbox.G = _G
    local f = load("return self == _ENV, G.hc_marker", "=s", "t", sandbox)
    local h = conc.go(function(g)
      hc_marker = "receiver"
      return g()
    end, f)
    local same, marker = join_ok(h)
    assert.is_true(same)
    assert.equal("receiver", marker)
  end)

  it("that is the sender's globals is the receiver's globals", function()
    local f = function() return _G == _ENV, type(print) end
    local same, tp = join_ok(conc.go(f))
    assert.is_true(same)
    assert.equal("function", tp)
  end)

  it("layered over the globals (its __index chain reaches them, or is a "
     .. "function, as busted's) binds to the receiver's globals", function()
    for _, env in ipairs({
      setmetatable({}, {__index = _G}),
      setmetatable({}, {__index = setmetatable({}, {__index = _G})}),
      setmetatable({}, {__index = function(_, k) return _G[k] end}),
    }) do
      local f = load("return print ~= nil, _ENV == _G", "=s", "t", env)
      local has_print, is_g = join_ok(conc.go(f))
      assert.is_true(has_print)
      assert.is_true(is_g)
    end
  end)

  it("a sandbox whose metatable reads from a table of its own is refused, "
     .. "never widened to the receiver's globals", function()
    local safe = {print = print}
    for _, env in ipairs({
      setmetatable({}, {__index = safe}),
      setmetatable({}, {__index = setmetatable({}, {__index = safe})}),
      setmetatable({}, {}),
    }) do
      local f = load("return os", "=s", "t", env)
      local ok, err = pcall(conc.go, f)
      assert.is_false(ok)
      assert.matches("conc.go: argument #1, upvalue '_ENV': cannot transfer "
        .. "a table with a metatable", err, 1, true)
    end
  end)
end)

describe("module values by name (point 5)", function()
  -- hc_ghost is loaded in this state only: no worker can require it.
  package.loaded.hc_ghost = {f = function() return "ghost" end}
  local ghost = require("hc_ghost")
  local cannot = "module 'hc_ghost' cannot be loaded here: "

  it("a worker can require what package.preload's Lua functions load, "
     .. "and receives that module's values by name", function()
    package.preload.hc_util = function()
      return {f = function() return "util.f" end, n = 1}
    end
    local util = require("hc_util")
    util.n = 2  -- run-time contents are the receiver's own
    local h = conc.go(function(f, u)
      return f(), u.n, require("hc_util") == u
    end, util.f, util)
    local s, n, same = join_ok(h)
    assert.equal("util.f", s)
    assert.equal(1, n)
    assert.is_true(same)
  end)

  it("travels only Lua functions of package.preload, and skips one that "
     .. "cannot travel", function()
    local co = coroutine.create(print)
    package.preload.hc_c = string.len
    package.preload.hc_bad = function() return co end
    package.preload.hc_good = function() return "good" end
    local h = conc.go(function()
      return package.preload.hc_c, package.preload.hc_bad, require("hc_good")
    end)
    local c, bad, good = join_ok(h)
    assert.is_nil(c)
    assert.is_nil(bad)
    assert.equal("good", good)
    package.preload.hc_c, package.preload.hc_bad = nil, nil
  end)

  it("join returns false and an error naming join, the result, the field "
     .. "and the module, as often as it is called", function()
    local h = conc.go(function()
      package.loaded.hc_wghost = {g = function() end}
      return 1, {x = {g = require("hc_wghost").g}}
    end)
    for _ = 1, 2 do
      local ok, err = h:join()
      assert.is_false(ok)
      assert.matches("conc.worker:join: result #2, field 'x.g': module "
                     .. "'hc_wghost' cannot be loaded here: ", err, 1, true)
    end
  end)

  it("a worker's decode of its function names conc.go and the upvalue",
     function()
    local h = conc.go(function() return ghost.f() end)
    local ok, err = h:join()
    assert.is_false(ok)
    assert.matches("conc.go: argument #1, upvalue 'ghost': " .. cannot,
                   err, 1, true)
  end)

  it("a module's field missing in the receiver is an error, not nil",
     function()
    local ch = conc.chan(1)
    local h = conc.go(function(c)
      package.loaded.hc_half = {}
      return pcall(c.recv, c)
    end, ch)
    package.loaded.hc_half = {k = function() end}
    ch:send({package.loaded.hc_half.k})
    local _, ok, err = h:join()
    assert.is_false(ok)
    assert.matches("conc.chan:recv: value, field '[1]': module 'hc_half' "
                   .. "has no field 'k' here", err, 1, true)
  end)

  -- Every decode site, in a worker that cannot load hc_ghost: put puts
  -- {f = ghost.f} where get (run in the worker) decodes it.
  local v = {f = ghost.f}
  local sites = {
    {"conc.chan:recv", function(x) local c = conc.chan(1) c:send(x)
      return c end, function(c) return c:recv() end},
    {"conc.chan:try_recv", function(x) local c = conc.chan(1) c:send(x)
      return c end, function(c) return c:try_recv() end},
    {"conc.chan:range", function(x) local c = conc.chan(1) c:send(x)
      c:close() return c end,
      -- one step of range, the call under test: the loop returns at once
      function(c)
        for y in c:range() do return y end  -- luacheck: ignore 512
      end},
    {"conc.select", function(x) local c = conc.chan(1) c:send(x)
      return c end, function(c) return conc.select{{"recv", c}} end},
    {"conc.map:load", function(x) local m = conc.map() m:store("k", x)
      return m end, function(m) return m:load("k") end},
    {"conc.map:swap", function(x) local m = conc.map() m:store("k", x)
      return m end, function(m) return m:swap("k", 1) end},
    {"conc.map:range", function(x) local m = conc.map() m:store("k", x)
      return m end, function(m) m:range(function() end) end},
    {"conc.ctx:value", function(x)
      return conc.with_value(conc.background(), "k", x) end,
      function(c) return c:value("k") end},
    {"conc.ctx:cause", function(x)
      local c, cancel = conc.with_cancel_cause(conc.background())
      cancel(x) return c end, function(c) return c:cause() end},
    {"conc.once:call", function(x) local o = conc.once()
      o:call(function() return x end) return o end,
      function(o) return o:call(function() end) end},
  }
  for _, site in ipairs(sites) do
    local fname, put, get = site[1], site[2], site[3]
    it(fname .. " raises an error naming it, the field and the module",
       function()
      local obj = put(v)
      local ok, err = join_ok(conc.go(function(o, g)
        return pcall(g, o)
      end, obj, get))
      assert.is_false(ok)
      assert.matches(fname .. ": ", err, 1, true)
      assert.matches("field 'f': " .. cannot, err, 1, true)
    end)
  end

  it("a map entry that cannot be decoded stays in the map", function()
    local m = conc.map()
    m:store("k", v)
    local ok = join_ok(conc.go(function(mm)
      return (pcall(mm.load, mm, "k"))
    end, m))
    assert.is_false(ok)
    assert.equal(ghost.f, m:load("k").f)
  end)
end)

describe("error values of workers (point 15)", function()
  it("a conc object travels as itself", function()
    local ch = conc.chan()
    local ok, err = conc.go(function(c) error(c) end, ch):join()
    assert.is_false(ok)
    assert.equal(ch, err)
  end)

  it("a number travels as the number", function()
    local ok, err = conc.go(function() error(42) end):join()
    assert.is_false(ok)
    assert.equal(42, err)
    ok, err = conc.go(function() error(1.5) end):join()
    assert.is_false(ok)
    assert.equal(1.5, err)
  end)

  it("tables and booleans travel as they are", function()
    local ok, err = conc.go(function() error({code = 7}) end):join()
    assert.is_false(ok)
    assert.same({code = 7}, err)
    ok, err = conc.go(function() error(false) end):join()
    assert.is_false(ok)
    assert.is_false(err)
  end)

  it("a table with a metatable arrives as its text, why, and the traceback",
     function()
    local ok, err = conc.go(function()
      error(setmetatable({}, {__tostring = function() return "MyErr" end}))
    end):join()
    assert.is_false(ok)
    assert.matches("^MyErr %(conc.go: error value: cannot transfer a table "
                   .. "with a metatable%)\nstack traceback:", err)
  end)

  it("a table holding what cannot travel says where", function()
    local ok, err = conc.go(function()
      error({co = coroutine.create(print)})
    end):join()
    assert.is_false(ok)
    assert.matches("conc.go: error value, field 'co': cannot transfer a "
                   .. "coroutine)\nstack traceback:", err, 1, true)
  end)

  it("a string still gets the traceback", function()
    local ok, err = conc.go(function() error("boom") end):join()
    assert.is_false(ok)
    assert.matches("boom\nstack traceback:", err, 1, true)
  end)
end)
