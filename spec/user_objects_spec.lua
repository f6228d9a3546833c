-- Issue 12, point 10: user objects travel. An instance of a class
-- defined in a module arrives with the receiver's own class, found by
-- name; a type can opt in with __conc_export (conc.socket does so for
-- luasocket's TCP sockets).
local conc = require("conc")
local support = require("support")
local join_ok = support.join_ok

local Point = require("fixtures.point")
local shapes = require("fixtures.shapes")
local Inbox = require("fixtures.inbox")
local handle = require("fixtures.handle")

-- The message of what f raises.
local function raised(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return tostring(err)
end

describe("an instance of a module's class", function()
  it("arrives with its class when the class is the module", function()
    local ch = conc.chan(1)
    ch:send(Point.new(3, 4))
    local p = ch:recv()
    assert.equal(Point, getmetatable(p))
    assert.equal(25, p:len2())
  end)

  it("arrives in a worker with the worker's own class", function()
    local h = conc.go(function(p, q)
      local P = require("fixtures.point")
      return getmetatable(p) == P, p:len2(), tostring(p + q), p == q
    end, Point.new(1, 2), Point.new(1, 2))
    assert.same({true, 5, "(2, 4)", true}, {join_ok(h)})
  end)

  it("arrives with its class when the class is a field of a module",
     function()
    local h = conc.go(function(c)
      local s = require("fixtures.shapes")
      return getmetatable(c) == s.Circle, c:kind(), c:area()
    end, shapes.Circle.new(2))
    assert.same({true, "circle", 12}, {join_ok(h)})
  end)

  it("nests: instances inside instances, both ways", function()
    local g = shapes.Group.new(shapes.Circle.new(1), shapes.Circle.new(2))
    local h = conc.go(function(group)
      local s = require("fixtures.shapes")
      group.items[#group.items + 1] = s.Circle.new(3)
      return group:area(), group
    end, g)
    local area, back = join_ok(h)
    assert.equal(42, area)
    assert.equal(shapes.Group, getmetatable(back))
    assert.equal(shapes.Circle, getmetatable(back.items[3]))
    assert.equal(42, back:area())
  end)

  it("keeps shared references and cycles", function()
    local p = Point.new(1, 1)
    p.self = p
    local ch = conc.chan(1)
    ch:send({p, p})
    local t = ch:recv()
    assert.equal(t[1], t[2])
    assert.equal(t[1], t[1].self)
    assert.equal(Point, getmetatable(t[1]))
  end)

  it("travels in a conc.map and in join's results", function()
    local m = conc.map()
    m:store("origin", Point.new(0, 0))
    local h = conc.go(function(map)
      local P = require("fixtures.point")
      local o = map:load("origin")
      map:store("moved", o + P.new(5, 6))
      return getmetatable(o) == P
    end, m)
    assert.is_true(join_ok(h))
    assert.equal("(5, 6)", tostring(m:load("moved")))
  end)

  it("lets a user's pattern object built from conc objects be shared by "
     .. "workers: every item exactly once", function()
    local inbox = Inbox.new(16)
    local n_workers, per_worker = 8, 100
    local wg = conc.waitgroup()
    for w = 1, n_workers do
      wg:add(1)
      conc.go(function(box, id, n, done)
        for i = 1, n do box:put(id * 1000 + i) end
        done:done()
      end, inbox, w, per_worker, wg)
    end
    local seen, count = {}, 0
    for _ = 1, n_workers * per_worker do
      local v = assert(inbox:take(10))
      assert.is_nil(seen[v])
      seen[v] = true
      count = count + 1
    end
    assert.is_true(wg:wait(10))
    assert.equal(n_workers * per_worker, count)
    assert.equal(n_workers * per_worker, inbox:puts())
  end)

  it("whose class the receiver's module lacks fails naming the module and "
     .. "the path", function()
    shapes.Late = {}  -- added at run time: the workers' module has none
    local ok, err = conc.go(function(t) return t end,
                            {x = setmetatable({}, shapes.Late)}):join()
    shapes.Late = nil
    assert.is_false(ok)
    assert.matches("conc.go: argument #2, field 'x': module "
                   .. "'fixtures.shapes' has no field 'Late' here", err, 1,
                   true)
  end)
end)

describe("a table with a metatable of no module", function()
  it("is still refused, naming where it sits", function()
    local ch = conc.chan(1)
    assert.equal("conc.chan:send: value: cannot transfer a table with a "
                 .. "metatable", raised(ch.send, ch, setmetatable({}, {})))
    local nested = {a = {b = setmetatable({}, {__index = Point})}}
    assert.equal("conc.chan:send: value, field 'a.b': cannot transfer a "
                 .. "table with a metatable", raised(ch.send, ch, nested))
    assert.equal(0, #ch)
  end)
end)

describe("__conc_export", function()
  it("rebuilds the value in the receiver with the function it names",
     function()
    local h0 = handle.open("db")
    local h = conc.go(function(x)
      return x.name, x.state, getmetatable(x).__conc_export ~= nil
    end, h0)
    assert.same({"db", "opened here", true}, {join_ok(h)})
    local ch = conc.chan(1)
    ch:send({h = h0})
    local t = ch:recv()
    assert.not_equal(h0, t.h)  -- rebuilt, not the same table
    assert.equal("db", t.h.name)
  end)

  it("rebuilds one value for one object met twice in a message", function()
    local ch = conc.chan(1)
    local x = handle.open("a")
    ch:send({x, {x}})
    local t = ch:recv()
    assert.equal(t[1], t[2][1])
  end)

  it("refuses, naming the path, when the hook raises or returns no name",
     function()
    local ch = conc.chan(1)
    local boom = setmetatable({}, {__conc_export = function()
      error("boom", 0)
    end})
    assert.equal("conc.chan:send: value, field 'h': cannot transfer a table "
                 .. "(its __conc_export raised: boom)",
                 raised(ch.send, ch, {h = boom}))
    local unnamed = setmetatable({}, {__conc_export = function()
      return 1, "nodot"
    end})
    assert.matches("conc.chan:send: value, field 'h': cannot transfer a "
                   .. "table (its __conc_export must return a value and",
                   raised(ch.send, ch, {h = unnamed}), 1, true)
    local holds = setmetatable({}, {__conc_export = function()
      return coroutine.create(print), "fixtures.handle.open"
    end})
    assert.equal("conc.chan:send: value: cannot transfer a table (the value "
                 .. "its __conc_export returned holds a coroutine)",
                 raised(ch.send, ch, holds))
    -- An export that holds the object itself would call its hook for
    -- ever: one clause says so (it said "holds a table (" 30 times over,
    -- cut off mid-word); an inner export's refusal is wrapped once.
    local itself = setmetatable({}, {__conc_export = function(v)
      return v, "fixtures.handle.open"
    end})
    assert.equal("conc.chan:send: value: cannot transfer a table (the value "
                 .. "its __conc_export returned holds the table itself)",
                 raised(ch.send, ch, itself))
    local inside = setmetatable({}, {__conc_export = function(v)
      return {v}, "fixtures.handle.open"
    end})
    assert.equal("conc.chan:send: value, field '[1]': cannot transfer a "
                 .. "table (the value its __conc_export returned holds the "
                 .. "table itself)", raised(ch.send, ch, inside))
    local outer = setmetatable({}, {__conc_export = function()
      return {inner = boom}, "fixtures.handle.open"
    end})
    assert.equal("conc.chan:send: value, field 'inner': cannot transfer a "
                 .. "table (the value its __conc_export returned holds a "
                 .. "table (its __conc_export raised: boom))",
                 raised(ch.send, ch, outer))
    assert.equal(0, #ch)
  end)

  local function exporting(to)
    return setmetatable({}, {__conc_export = function() return "x", to end})
  end

  it("fails in the receiver, naming the rebuilder and the path, when the "
     .. "rebuilder fails", function()
    local cases = {
      {"fixtures.handle.refuse", "'fixtures.handle.refuse' could not "
       .. "rebuild the value: no handle named x"},
      {"fixtures.handle.raise", "'fixtures.handle.raise' could not rebuild "
       .. "the value: cannot open x"},
      {"fixtures.handle.nothing", "cannot rebuild with "
       .. "'fixtures.handle.nothing': module 'fixtures.handle' has no field "
       .. "'nothing' here"},
      {"no_such_module.open", "cannot rebuild with 'no_such_module.open': "
       .. "module 'no_such_module' cannot be loaded here"},
    }
    local ch = conc.chan(1)
    for _, case in ipairs(cases) do
      ch:send({list = {exporting(case[1])}})
      local err = raised(ch.recv, ch)
      assert.matches("conc.chan:recv: value, field 'list[1]': " .. case[2],
                     err, 1, true)
      local ok, gerr = conc.go(function() end, exporting(case[1])):join()
      assert.is_false(ok)
      assert.matches("conc.go: argument #2: " .. case[2], gerr, 1, true)
    end
  end)

  it("is not looked for on a userdata with no hook", function()
    assert.equal("conc.chan:send: value: cannot transfer a userdata",
                 raised(conc.chan(1).send, conc.chan(1), io.stdout))
  end)
end)

describe("conc.socket (__conc_export for luasocket)", function()
  local socket = require("socket")
  require("conc.socket")

  it("hands accepted sockets from an accept loop to workers that serve "
     .. "them, each connection exactly once", function()
    local n = 6
    local server = assert(socket.bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    local conns = conc.chan()
    local acceptor = conc.go(function(srv, out, count)
      require("conc.socket")
      local moved = 0
      for _ = 1, count do
        local c = assert(srv:accept())
        out:send(c)
        if c:getfd() == -1 then moved = moved + 1 end  -- it gave it up
      end
      out:close()
      srv:close()
      return moved
    end, server, conns, n)
    assert.equal(-1, server:getfd())  -- the listener moved to the worker
    local servers = {}
    for id = 1, 2 do
      servers[id] = conc.go(function(input, me)
        local served = 0
        for c in input:range() do
          local line = assert(c:receive("*l"))
          assert(c:send(("%s by %d\n"):format(line, me)))
          c:close()
          served = served + 1
        end
        return served
      end, conns, id)
    end
    local replies = {}
    for i = 1, n do
      local c = assert(socket.connect("127.0.0.1", port))
      c:settimeout(10)
      assert(c:send("request " .. i .. "\n"))
      replies[i] = assert(c:receive("*l"))
      c:close()
    end
    assert.equal(n, join_ok(acceptor))
    local served = join_ok(servers[1]) + join_ok(servers[2])
    assert.equal(n, served)
    for i = 1, n do
      assert.matches("^request " .. i .. " by [12]$", replies[i])
    end
  end)

  it("refuses a closed socket", function()
    local s = socket.tcp()
    s:close()
    assert.matches("cannot transfer a userdata (its __conc_export raised: "
                   .. "conc.socket: socket is closed)",
                   raised(conc.chan(1).send, conc.chan(1), s), 1, true)
  end)
end)
