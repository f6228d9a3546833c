-- Bad input: every public function and method of conc called with wrong
-- types, wrong argument counts, out-of-range numbers, objects of another
-- type as self, closed channels, stopped timers and canceled contexts.
--
-- Each call must either raise an error that names the function (Lua's
-- "bad argument #n to 'f'", "calling 'f' on bad self", or conc's
-- "conc.chan:send: ..."), or give the result docs/API.md documents. The
-- object it was called on must be left as it was and keep working. A call
-- that crashes the process runs in a subprocess (support.run_script).
--
-- The sweeps are table-driven: one call per value of values(), and every
-- failure is collected and reported with the call and the value that
-- failed, so one broken case does not hide the others.
local conc = require("conc")
local support = require("support")

-- ---- small helpers -------------------------------------------------------

local function expect(cond, fmt, ...)
  if not cond then error(fmt:format(...), 0) end
end

local function show_value(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if math.type(v) == "float" then return ("%.17g"):format(v) end
  return tostring(v)
end

-- Formats a table.pack result as "a, b, c" (or "no values").
local function show(res)
  if res.n == 0 then return "no values" end
  local parts = {}
  for i = 1, res.n do parts[i] = show_value(res[i]) end
  return table.concat(parts, ", ")
end

-- Equal as a result: same number and subtype (NaN equals NaN), else the
-- same value.
local function same(a, b)
  if type(a) == "number" and type(b) == "number" then
    return (a == b or (a ~= a and b ~= b)) and math.type(a) == math.type(b)
  end
  return rawequal(a, b)
end

local function same_results(res, want)
  if res.n ~= want.n then return false end
  for i = 1, want.n do
    if not same(res[i], want[i]) then return false end
  end
  return true
end

-- An expectation: the call returns exactly these values.
local function returns(...)
  local want = table.pack(...)
  return function(res)
    expect(same_results(res, want), "returned %s, expected %s", show(res),
           show(want))
  end
end

local function is_a(v, tname)
  return type(v) == "userdata" and tostring(v):sub(1, #tname + 2) ==
         tname .. ": "
end

-- Callers built from source, so that Lua names the function as a user's
-- call site would: `o:m(...)` (a method call), `P.m(...)` (a field call,
-- used to pass a wrong self) and `conc.f(...)`. The results are packed,
-- which also keeps the call from being a tail call (those lose the name).
local callers = {}
local function compile(key, src, upvalue)
  if callers[key] == nil then
    callers[key] = assert(load(src, "=" .. key))(upvalue)
  end
  return callers[key]
end

local function method_caller(m)
  return compile("method " .. m, ("return function(o, ...) " ..
    "return table.pack(o:%s(...)) end"):format(m))
end

local function module_caller(f)
  return compile("module " .. f, ("local conc = ... return function(_, ...) " ..
    "return table.pack(conc.%s(...)) end"):format(f), conc)
end

local function field_caller(proto, m)
  return assert(load(("local P = ... return function(...) " ..
    "return table.pack(P.%s(...)) end"):format(m), "=field " .. m))(proto)
end

-- Checks that err names the function: Lua's "bad argument #argn to
-- 'short'" (argn checked when given), "calling 'short' on bad self"
-- (argn 0), or conc's "qual: ...". want, if given, must be in err too.
local function assert_names(err, short, qual, argn, want)
  expect(type(err) == "string", "raised a %s, not a message", type(err))
  if want then
    expect(err:find(want, 1, true), "message %q lacks %q", err, want)
  end
  local n, name = err:match("bad argument #(%d+) to '([^']*)'")
  if name then
    expect(name == short or name:sub(-#short - 1) == "." .. short,
           "message %q names %q, not %q", err, name, short)
    expect(argn == nil or tonumber(n) == argn,
           "message %q blames argument #%s, not #%s", err, n, tostring(argn))
    return
  end
  name = err:match("calling '([^']*)' on bad self")
  if name then
    expect(name == short and (argn == nil or argn == 0),
           "message %q: wrong name or position (wanted %s #%s)", err, short,
           tostring(argn))
    return
  end
  expect(err:find(qual .. ":", 1, true), "message %q does not name %s",
         err, qual)
end

-- ---- values of every kind --------------------------------------------------

local function light_userdata()
  local x = 1
  return debug.upvalueid(function() return x end, 1)
end

-- A conc.chan whose box was finalized by hand: its object is released
-- from this box. A second channel keeps the object alive, so that its
-- address is not reused while the box lives (a new object at that
-- address would be given this dead box: see "metamethods" below).
local function released_chan()
  local ch, holder = conc.chan(), conc.chan(1)
  holder:send(ch)
  getmetatable(ch).__gc(ch)
  return ch, holder
end

-- Fresh values for one test. kind classifies them for the accept rules.
local function values()
  local canceled, cancel_it = conc.with_cancel(conc.background())
  cancel_it()
  local live, live_cancel = conc.with_cancel(conc.background())
  local h = conc.go(function() return 42 end)
  assert(h:wait(10))
  local released, holder = released_chan()
  return {
    {name = "no value", kind = "none"},
    {name = "nil", kind = "nil"},
    {name = "false", v = false, kind = "boolean"},
    {name = "true", v = true, kind = "boolean"},
    {name = "0", v = 0, kind = "integer"},
    {name = "-1", v = -1, kind = "integer"},
    {name = "1 << 40", v = 1 << 40, kind = "integer"},
    {name = "math.mininteger", v = math.mininteger, kind = "integer"},
    {name = "math.maxinteger", v = math.maxinteger, kind = "integer"},
    {name = "1.5", v = 1.5, kind = "float"},
    {name = "-0.5", v = -0.5, kind = "float"},
    {name = "2^40 (a float)", v = 2^40, kind = "float"},
    {name = "math.huge", v = math.huge, kind = "float"},
    {name = "-math.huge", v = -math.huge, kind = "float"},
    {name = "NaN", v = 0/0, kind = "nan"},
    {name = "'x'", v = "x", kind = "string"},
    {name = "'1' (a numeric string)", v = "1", kind = "numstring"},
    {name = "{}", v = {}, kind = "table"},
    {name = "a table with a metatable", v = setmetatable({}, {}),
     kind = "mttable"},
    {name = "a Lua function", v = function() end, kind = "function"},
    {name = "os.clock (a C function)", v = os.clock, kind = "function"},
    {name = "a coroutine.wrap function",
     v = coroutine.wrap(function() end), kind = "cclosure"},
    {name = "a coroutine", v = coroutine.create(function() end),
     kind = "thread"},
    {name = "io.stdout", v = io.stdout, kind = "userdata"},
    {name = "a light userdata", v = light_userdata(), kind = "lightuserdata"},
    {name = "a conc.guard", v = conc.mutex():guard(), kind = "userdata"},
    {name = "a conc.pool", v = conc.pool(), kind = "mttable"},
    {name = "a released conc.chan", v = released, kind = "released",
     keep = holder},
    {name = "conc.chan", v = conc.chan(), kind = "conc.chan"},
    {name = "conc.mutex", v = conc.mutex(), kind = "conc.mutex"},
    {name = "conc.rwmutex", v = conc.rwmutex(), kind = "conc.rwmutex"},
    {name = "conc.waitgroup", v = conc.waitgroup(), kind = "conc.waitgroup"},
    {name = "conc.cond", v = conc.cond(conc.mutex()), kind = "conc.cond"},
    {name = "conc.once", v = conc.once(), kind = "conc.once"},
    {name = "conc.map", v = conc.map(), kind = "conc.map"},
    {name = "conc.ctx", v = live, kind = "conc.ctx"},
    {name = "a canceled conc.ctx", v = canceled, kind = "conc.ctx",
     canceled = true},
    {name = "conc.cancel", v = live_cancel, kind = "conc.cancel", ctx = live},
    {name = "conc.timer", v = conc.timer(3600), kind = "conc.timer"},
    {name = "conc.ticker", v = conc.ticker(3600), kind = "conc.ticker"},
    {name = "conc.worker", v = h, kind = "conc.worker"},
  }
end

local function is_number(r)
  return r.kind == "integer" or r.kind == "float" or r.kind == "nan"
end

-- A number of seconds as luaL_checknumber reads it (NaN refused).
local function is_seconds(r)
  return (is_number(r) and r.kind ~= "nan") or r.kind == "numstring"
end

local function is_absent(r) return r.kind == "none" or r.kind == "nil" end

local function is_conc(r) return r.kind:sub(1, 5) == "conc." end

-- What the codec carries (the docs' "Refused" list).
local refused = {none = true, cclosure = true, thread = true, userdata = true,
                 lightuserdata = true, mttable = true, released = true}
local function transferable(r) return not refused[r.kind] end

-- A map key: string, number (not NaN) or boolean.
local function is_map_key(r)
  return r.kind == "string" or r.kind == "numstring" or r.kind == "boolean" or
         (is_number(r) and r.kind ~= "nan")
end

-- A context key: string, number, boolean or conc object.
local function is_ctx_key(r)
  return r.kind == "string" or r.kind == "numstring" or
         r.kind == "boolean" or (is_number(r) and r.kind ~= "nan") or
         is_conc(r)
end

-- What a copy of r.v looks like after a trip through the codec.
local function copy_of(r, got)
  if r.kind == "table" then return type(got) == "table" and next(got) == nil end
  if r.kind == "function" then return type(got) == "function" end
  return same(got, r.v)
end

-- Checks that the shared values were not changed by being passed where
-- they did not belong (a mutex passed as a channel must not be unlocked,
-- closed or released...). Destructive: the values are used up after it.
local function check_values(vals)
  for _, r in ipairs(vals) do
    local ok, err = pcall(function()
      local k, v = r.kind, r.v
      if k == "conc.chan" then
        expect(v:len() == 0 and v:cap() == 0, "len/cap changed")
        expect(select(3, v:try_recv()) == "would block", "closed or filled")
      elseif k == "conc.mutex" then
        expect(v:try_lock(), "is locked")
        v:unlock()
      elseif k == "conc.rwmutex" then
        expect(v:try_lock(), "is locked")
        v:unlock()
      elseif k == "conc.waitgroup" then
        expect(v:count() == 0, "count is %d", v:count())
      elseif k == "conc.cond" then
        expect(v.L:try_lock(), "its mutex is locked")
        v.L:unlock()
      elseif k == "conc.once" then
        expect(v:call(function() return "ran" end) == "ran", "already ran")
      elseif k == "conc.map" then
        expect(v:len() == 0, "len is %d", v:len())
      elseif k == "conc.ctx" then
        expect(v:err() == (r.canceled and "context canceled" or nil),
               "err() is %s", tostring(v:err()))
      elseif k == "conc.cancel" then
        expect(r.ctx:err() == nil, "its context was canceled")
      elseif k == "conc.timer" or k == "conc.ticker" then
        expect(v:stop() == true, "was stopped")
      elseif k == "conc.worker" then
        expect(v:status() == "done", "status %s", v:status())
        expect(same_results(table.pack(v:join()), table.pack(true, 42)),
               "join changed")
      end
    end)
    if not ok then
      error(("value %s was changed: %s"):format(r.name, err), 0)
    end
  end
end

-- ---- fixtures ---------------------------------------------------------------
-- An object in a known state, and a check that it is still in that state
-- and works.

local FX = {}

FX.chan = {  -- a buffered channel (cap 2) holding "a"
  make = function()
    local ch = conc.chan(2)
    ch:send("a")
    return ch
  end,
  check = function(ch)
    expect(ch:cap() == 2 and ch:len() == 1 and #ch == 1,
           "cap/len changed: cap %d, len %d", ch:cap(), ch:len())
    local r = table.pack(ch:recv(0))
    expect(same_results(r, table.pack("a", true)),
           "the buffered value is lost: recv gave %s", show(r))
    expect(ch:try_send("b") == true, "try_send fails afterwards")
    r = table.pack(ch:try_recv())
    expect(same_results(r, table.pack("b", true)), "does not carry values")
    r = table.pack(ch:try_recv())
    expect(same_results(r, table.pack(nil, nil, "would block")),
           "empty channel's try_recv gave %s", show(r))
  end,
}

-- After a successful send of r.v on FX.chan: the channel holds "a", then
-- the value; restores it to holding "a".
local function sent_on_chan(r, ch)
  expect(ch:len() == 2, "len is %d after the send, not 2", ch:len())
  local first = table.pack(ch:recv(0))
  expect(same_results(first, table.pack("a", true)), "FIFO order broken")
  local v, ok = ch:recv(0)
  expect(ok == true and copy_of(r, v), "received %s, not a copy of %s",
         show_value(v), r.name)
  ch:send("a")
end

FX.closed_chan = {  -- a closed buffered channel (cap 2) still holding "a"
  make = function()
    local ch = conc.chan(2)
    ch:send("a")
    ch:close()
    return ch
  end,
  check = function(ch)
    expect(ch:cap() == 2 and ch:len() == 1, "cap/len changed")
    local r = table.pack(ch:recv())
    expect(same_results(r, table.pack("a", true)), "lost its value: %s",
           show(r))
    r = table.pack(ch:recv())
    expect(same_results(r, table.pack(nil, false)), "recv gave %s", show(r))
    local ok, err = pcall(ch.send, ch, 1)
    expect(not ok and tostring(err):find("send on closed channel", 1, true),
           "send did not raise: %s", tostring(err))
  end,
}

FX.wg0 = {  -- a waitgroup at zero
  make = function() return conc.waitgroup() end,
  check = function(wg)
    expect(wg:count() == 0, "count is %d, not 0", wg:count())
    expect(wg:wait(0) == true, "wait(0) at zero is not true")
    wg:add(1)
    local r = table.pack(wg:wait(0))
    expect(same_results(r, table.pack(nil, "timeout")), "wait(0) gave %s",
           show(r))
    wg:done()
    expect(wg:wait() == true, "wait after done")
    expect(not pcall(wg.done, wg), "done below zero did not raise")
  end,
}

FX.mutex = {
  make = function() return conc.mutex() end,
  check = function(mu)
    expect(mu:try_lock(), "is locked")
    expect(not mu:try_lock(), "try_lock twice succeeded")
    mu:unlock()
    expect(not pcall(mu.unlock, mu), "unlock of unlocked did not raise")
  end,
}

FX.rwmutex = {
  make = function() return conc.rwmutex() end,
  check = function(rw)
    expect(rw:try_rlock() and rw:try_rlock(), "cannot be read-locked")
    expect(not rw:try_lock(), "write-locked while read-locked")
    rw:runlock()
    rw:runlock()
    expect(rw:try_lock(), "cannot be write-locked")
    expect(not rw:try_rlock(), "read-locked while write-locked")
    rw:unlock()
  end,
}

FX.cond = {
  make = function() return conc.cond(conc.mutex()) end,
  check = function(c)
    expect(is_a(c.L, "conc.mutex"), "c.L is %s", tostring(c.L))
    expect(c.L:try_lock(), "its mutex is locked")
    c.L:unlock()
    c:signal()
    c:broadcast()
  end,
}

FX.once = {  -- a once that has not run
  make = function() return conc.once() end,
  check = function(o)
    expect(o:call(function() return "first" end) == "first", "already ran")
    expect(o:call(function() return "second" end) == "first", "ran twice")
  end,
}

FX.map = {  -- a map holding a = 1
  make = function()
    local m = conc.map()
    m:store("a", 1)
    return m
  end,
  check = function(m)
    expect(m:len() == 1 and #m == 1, "len is %d, not 1", m:len())
    local r = table.pack(m:load("a"))
    expect(same_results(r, table.pack(1, true)), "load('a') gave %s", show(r))
    m:store("b", 2)
    expect(m:len() == 2 and m:load("b") == 2, "store does not work")
  end,
}

FX.ctx = {  -- a live child of background
  make = function()
    local ctx, cancel = conc.with_cancel(conc.background())
    FX.ctx.cancels[ctx] = cancel
    return ctx
  end,
  cancels = setmetatable({}, {__mode = "k"}),
  check = function(ctx)
    expect(ctx:err() == nil, "canceled: %s", tostring(ctx:err()))
    expect(select(3, ctx:done():try_recv()) == "would block", "done closed")
    FX.ctx.cancels[ctx]()
    expect(ctx:err() == "context canceled", "cannot be canceled")
  end,
}

FX.timer = {  -- an active timer, due in an hour
  make = function() return conc.timer(3600) end,
  check = function(t)
    expect(t:stop() == true, "was not active")
    expect(t:stop() == false, "still active after stop")
    local r = table.pack(t.C:try_recv())
    expect(same_results(r, table.pack(nil, nil, "would block")),
           "a stale value after stop: %s", show(r))
  end,
}

FX.ticker = {
  make = function() return conc.ticker(3600) end,
  check = function(t)
    expect(t:stop() == true, "was not active")
    expect(t:stop() == false, "still active after stop")
  end,
}

FX.handle = {  -- a worker that returned 42
  make = function()
    local h = conc.go(function() return 42 end)
    assert(h:wait(10))
    return h
  end,
  check = function(h)
    local r = table.pack(h:join())
    expect(same_results(r, table.pack(true, 42)), "join gave %s", show(r))
    expect(h:status() == "done", "status %s", h:status())
    expect(h:wait(0) == true, "wait(0) is not true")
    r = table.pack(h:done():recv(0))
    expect(same_results(r, table.pack(nil, false)), "done() is not closed")
  end,
}

FX.pool = {  -- a pool with new, holding "x"
  make = function()
    local p = conc.pool{new = function() return "new" end}
    p:put("x")
    return p
  end,
  check = function(p)
    expect(#p == 1, "#pool is %d, not 1", #p)
    expect(p:get() == "x", "lost its free object")
    expect(p:get() == "new", "new is not called")
  end,
}

-- ---- the sweep -------------------------------------------------------------

--[[ sweep{
  label = "ch:send(v, 0)",      -- the call, for messages
  short = "send", qual = "conc.chan:send",  -- how errors must name it
  method = "send" | fn = "chan" | call = function(obj, ...) end,
  fixture = FX.chan,            -- the object, made fresh for each value
  args = {n = 2, nil, 0},       -- the other arguments
  pos = 1,                      -- the argument given each value
  argn = 1,                     -- the position Lua's messages must blame
  skip = function(r) end,       -- values not to try
  accept = function(r, obj) end -- nil: must raise; else a check(res, obj)
} ]]
local function sweep(o)
  local call = o.call or (o.method and method_caller(o.method)) or
               module_caller(o.fn)
  local vals = values()
  local failures = {}
  for _, r in ipairs(vals) do
    if not (o.skip and o.skip(r)) then
      local obj = o.fixture and o.fixture.make()
      local n, args = o.pos - 1, {}
      for i = 1, o.pos - 1 do args[i] = o.args[i] end
      if r.kind ~= "none" then
        args[o.pos] = r.v
        n = math.max(o.pos, o.args.n or #o.args)
        for i = o.pos + 1, n do args[i] = o.args[i] end
      end
      local ok, res = pcall(call, obj, table.unpack(args, 1, n))
      local accepted = o.accept(r, obj)
      local fine, err = pcall(function()
        if accepted then
          expect(ok, "raised %s", tostring(res))
          accepted(res, obj, r)
        else
          expect(not ok, "did not raise; returned %s",
                 ok and show(res) or "")
          assert_names(res, o.short, o.qual, o.argn or o.pos, o.want)
        end
        if o.fixture then o.fixture.check(obj) end
      end)
      if not fine then
        failures[#failures + 1] = ("%s with argument #%d = %s: %s"):format(
          o.label, o.pos, r.name, tostring(err))
      end
    end
  end
  local ok, err = pcall(check_values, vals)
  if not ok then failures[#failures + 1] = o.label .. ": " .. err end
  assert(#failures == 0, #failures .. " failure(s):\n" ..
         table.concat(failures, "\n"))
end

-- Calls each method of proto through `P.m(bad, ...)` with every value
-- that is not of the accepted kinds as self; each must raise a type error
-- naming the method (and the expected type), and change nothing.
local function sweep_self(fixture, tname, methods, accepted_kinds)
  local proto = fixture.make()
  local vals = values()
  local failures = {}
  for m, args in pairs(methods) do
    local call = field_caller(proto, m)
    for _, r in ipairs(vals) do
      local skip
      if type(accepted_kinds) == "function" then skip = accepted_kinds(r)
      else skip = (accepted_kinds or {[tname] = true})[r.kind] end
      if not skip then
        local ok, res
        if r.kind == "none" then ok, res = pcall(call)
        else ok, res = pcall(call, r.v, table.unpack(args, 1, args.n)) end
        local fine, err = pcall(function()
          expect(not ok, "did not raise; returned %s", ok and show(res) or "")
          assert_names(res, m, tname .. ":" .. m, 1,
                       r.kind ~= "released" and tname or nil)
        end)
        if not fine then
          failures[#failures + 1] = ("%s.%s(self = %s): %s"):format(
            tname, m, r.name, tostring(err))
        end
      end
    end
  end
  local fine, err = pcall(fixture.check, proto)
  if not fine then failures[#failures + 1] = "the object itself: " .. err end
  fine, err = pcall(check_values, vals)
  if not fine then failures[#failures + 1] = err end
  assert(#failures == 0, #failures .. " failure(s):\n" ..
         table.concat(failures, "\n"))
end

-- Runs {label, fn, check} rows: fn() must not raise and check(res) must
-- hold; used for "extra arguments are ignored" lists.
local function rows(list)
  local failures = {}
  for _, row in ipairs(list) do
    local ok, res = pcall(function() return table.pack(row[2]()) end)
    local fine, err = pcall(function()
      expect(ok, "raised %s", tostring(res))
      row[3](res)
    end)
    if not fine then failures[#failures + 1] = row[1] .. ": " .. err end
  end
  assert(#failures == 0, #failures .. " failure(s):\n" ..
         table.concat(failures, "\n"))
end

local EXTRA = {"extra", {}, 3.5, false, nil, coroutine.create(print)}
local function extra() return table.unpack(EXTRA, 1, 6) end

-- Runs code in a fresh lua5.4 (deadlocks raise instead of exiting);
-- returns its output and exit code.
local function subprocess(code, timeout_s)
  return support.run_script('local conc = require("conc")\n' ..
    'conc.set_deadlock_mode("error")\n' .. code, timeout_s or 20)
end

-- ==== channels ==============================================================

describe("bad input: conc.chan", function()
  it("conc.chan(capacity) takes nothing, nil or an integer 0..2^31-1",
    function()
      local function cap_is(c)
        return function(res)
          expect(is_a(res[1], "conc.chan"), "returned %s", show(res))
          expect(res[1]:cap() == c and res[1]:len() == 0,
                 "cap %d, len %d, expected cap %d", res[1]:cap(),
                 res[1]:len(), c)
        end
      end
      sweep{label = "conc.chan(capacity)", short = "chan", qual = "conc.chan",
            fn = "chan", args = {}, pos = 1,
            accept = function(r)
              if is_absent(r) then return cap_is(0) end
              if r.kind == "numstring" then return cap_is(1) end
              if r.kind == "integer" and r.v >= 0 and r.v < 2^31 then
                return cap_is(r.v)
              end
            end}
    end)

  it("send: any transferable value, nil included; others raise, sending "..
     "nothing", function()
      sweep{label = "ch:send(v, 0)", short = "send", qual = "conc.chan:send",
            method = "send", fixture = FX.chan, args = {n = 2, nil, 0},
            pos = 1,
            accept = function(r)
              if not transferable(r) and r.kind ~= "nil" then return nil end
              return function(res, ch)
                returns(true)(res)
                sent_on_chan(r, ch)
              end
            end}
    end)

  it("send: the wait is nil, seconds or a conc.ctx; a canceled ctx fails it",
    function()
      sweep{label = "ch:send(1, wait)", short = "send",
            qual = "conc.chan:send", method = "send", fixture = FX.chan,
            args = {n = 2, 1}, pos = 2,
            accept = function(r)
              if r.canceled then return returns(nil, "context canceled") end
              if is_absent(r) or r.kind == "conc.ctx" or is_seconds(r) then
                return function(res, ch)
                  returns(true)(res)
                  sent_on_chan({kind = "integer", v = 1}, ch)
                end
              end
            end}
    end)

  it("try_send: any transferable value; others raise, sending nothing",
    function()
      sweep{label = "ch:try_send(v)", short = "try_send",
            qual = "conc.chan:try_send", method = "try_send",
            fixture = FX.chan, args = {}, pos = 1,
            accept = function(r)
              if not transferable(r) and r.kind ~= "nil" then return nil end
              return function(res, ch)
                returns(true)(res)
                sent_on_chan(r, ch)
              end
            end}
    end)

  it("recv: the wait is nil, seconds or a conc.ctx; a canceled ctx fails it",
    function()
      sweep{label = "ch:recv(wait)", short = "recv", qual = "conc.chan:recv",
            method = "recv", fixture = FX.chan, args = {}, pos = 1,
            accept = function(r)
              if r.canceled then
                return returns(nil, nil, "context canceled")
              end
              if is_absent(r) or r.kind == "conc.ctx" or is_seconds(r) then
                return function(res, ch)
                  returns("a", true)(res)
                  ch:send("a")
                end
              end
            end}
    end)

  it("every method raises on a self that is not a conc.chan", function()
    sweep_self(FX.chan, "conc.chan", {
      send = {n = 2, 1, 0}, try_send = {n = 1, 1}, recv = {n = 1, 0},
      try_recv = {n = 0}, close = {n = 0}, len = {n = 0}, cap = {n = 0},
      range = {n = 0}})
  end)

  it("the range iterator raises on a state that is not a conc.chan",
    function()
      local ch = FX.chan.make()
      local iter = ch:range()
      for _, r in ipairs(values()) do
        if r.kind ~= "conc.chan" and r.kind ~= "none" then
          local ok, err = pcall(iter, r.v)
          assert(not ok and tostring(err):find("conc.chan expected", 1, true)
                 or (r.kind == "released" and
                     tostring(err):find("already released", 1, true)),
                 "range iterator with " .. r.name .. ": " .. tostring(err))
        end
      end
      FX.chan.check(ch)
    end)

  it("extra arguments are ignored", function()
    local ch = conc.chan(2)
    rows{
      {"conc.chan(2, ...)", function() return conc.chan(2, extra()):cap() end,
       returns(2)},
      {"ch:send(1, 0, ...)", function() return ch:send(1, 0, extra()) end,
       returns(true)},
      {"ch:try_send(2, ...)", function() return ch:try_send(2, extra()) end,
       returns(true)},
      {"ch:len(...)", function() return ch:len(extra()) end, returns(2)},
      {"ch:cap(...)", function() return ch:cap(extra()) end, returns(2)},
      {"ch:recv(0, ...)", function() return ch:recv(0, extra()) end,
       returns(1, true)},
      {"ch:try_recv(...)", function() return ch:try_recv(extra()) end,
       returns(2, true)},
      {"ch:close(...)", function() return ch:close(extra()) end, returns()},
      {"ch:range(...)", function()
         local n = 0
         for _ in ch:range(extra()) do n = n + 1 end
         return n
       end, returns(0)},
    }
  end)
end)

describe("bad input: a closed channel", function()
  it("send and try_send raise Go's message, with any wait", function()
    for _, wait in ipairs({0, 0.01, -1, math.huge}) do
      local ch = FX.closed_chan.make()
      assert.has_error(function() ch:send(1, wait) end,
        "conc.chan:send: send on closed channel")
      assert.has_error(function() ch:try_send(nil) end,
        "conc.chan:try_send: send on closed channel")
      FX.closed_chan.check(ch)
    end
  end)

  it("send with a live ctx raises; with a canceled ctx fails with its error",
    function()
      local ch = FX.closed_chan.make()
      assert.has_error(function() ch:send(1, conc.background()) end,
        "conc.chan:send: send on closed channel")
      local ctx, cancel = conc.with_cancel(conc.background())
      cancel()
      assert.are.same({nil, "context canceled"}, {ch:send(1, ctx)})
      FX.closed_chan.check(ch)
    end)

  it("close of a closed channel raises; a <close> variable leaves it alone",
    function()
      local ch = FX.closed_chan.make()
      assert.has_error(function() ch:close() end,
        "conc.chan:close: close of closed channel")
      do local _ <close> = ch end
      FX.closed_chan.check(ch)
    end)

  it("recv, try_recv and select drain the buffer, then give nil, false",
    function()
      local ch = FX.closed_chan.make()
      assert.are.same({"a", true}, {ch:try_recv()})
      for _, wait in ipairs({0, -math.huge, 0.01, math.huge}) do
        local r = table.pack(ch:recv(wait))
        assert.is_true(same_results(r, table.pack(nil, false)),
          "recv(" .. show_value(wait) .. ") gave " .. show(r))
      end
      assert.are.same({nil, false}, {ch:recv()})
      assert.are.same({nil, false}, {ch:recv(conc.background())})
      assert.are.same({nil, false}, {ch:try_recv()})
      assert.are.same({1, nil, false}, {conc.select{{"recv", ch}}})
      local n = 0
      for _ in ch:range() do n = n + 1 end
      assert.are.equal(0, n)
      assert.are.same({0, 2, 0}, {ch:len(), ch:cap(), #ch})
    end)

  it("recv with a canceled ctx fails with the ctx's error", function()
    local ch = FX.closed_chan.make()
    local ctx, cancel = conc.with_cancel(conc.background())
    cancel()
    assert.are.same({nil, nil, "context canceled"}, {ch:recv(ctx)})
    FX.closed_chan.check(ch)
  end)

  it("a select send case on it raises naming the case; sends nothing",
    function()
      local ch = FX.closed_chan.make()
      local ok, err = pcall(conc.select, {{"send", ch, 2}, default = true})
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find(
        "conc.select: case #1: send on closed channel", 1, true), err)
      FX.closed_chan.check(ch)
    end)
end)

-- ==== select ================================================================

describe("bad input: conc.select", function()
  it("cases must be a table", function()
    sweep{label = "conc.select(cases)", short = "select",
          qual = "conc.select", fn = "select", args = {}, pos = 1,
          -- a table of no cases would block forever (Go's select {})
          skip = function(r) return r.kind == "table" or
                                    r.kind == "mttable" end,
          accept = function() return nil end}
  end)

  it("a case must be a table or nil", function()
    sweep{label = "conc.select{case, default = true}", short = "select",
          qual = "conc.select",
          call = function(_, v)
            return table.pack(conc.select{v, n = 1, default = true})
          end,
          args = {}, pos = 1, skip = function(r) return r.kind == "none" end,
          accept = function(r)
            if r.kind == "nil" then return returns("default") end
          end}
  end)

  it("a case's first field must be \"recv\" or \"send\"", function()
    local ch = conc.chan(1)
    sweep{label = "conc.select{{op, ch}, default = true}", short = "select",
          qual = "conc.select",
          call = function(_, v)
            return table.pack(conc.select{{v, ch}, default = true})
          end,
          args = {}, pos = 1, skip = function(r) return r.kind == "none" end,
          accept = function() return nil end}
  end)

  it("a case's channel must be a conc.chan or nil (never ready)", function()
    for _, op in ipairs({"recv", "send"}) do
      sweep{label = ("conc.select{{%q, chan, 1}, default = true}"):format(op),
            short = "select", qual = "conc.select",
            call = function(_, v)
              return table.pack(conc.select{{op, v, 1}, default = true})
            end,
            args = {}, pos = 1, skip = function(r) return r.kind == "none" end,
            accept = function(r)
              if r.kind == "nil" or r.kind == "conc.chan" then
                return returns("default")
              end
            end}
    end
  end)

  it("a send case's value must be transferable; if not, nothing is sent",
    function()
      sweep{label = "conc.select{{'send', ch, v}, default = true}",
            short = "select", qual = "conc.select",
            call = function(ch, v)
              return table.pack(conc.select{{"send", ch, v}, default = true})
            end,
            fixture = FX.chan, args = {}, pos = 1,
            skip = function(r) return r.kind == "none" end,
            accept = function(r)
              if not transferable(r) and r.kind ~= "nil" then return nil end
              return function(res, ch)
                returns(1)(res)
                sent_on_chan(r, ch)
              end
            end}
    end)

  it("timeout must be a number of seconds (not NaN) or nil", function()
    sweep{label = "conc.select{{'recv', ready}, timeout = t}",
          short = "select", qual = "conc.select",
          call = function(ch, v)
            return table.pack(conc.select{{"recv", ch}, timeout = v})
          end,
          fixture = FX.chan, args = {}, pos = 1,
          skip = function(r) return r.kind == "none" end,
          accept = function(r)
            if is_absent(r) or is_seconds(r) then
              return function(res, ch)
                returns(1, "a", true)(res)
                ch:send("a")
              end
            end
          end}
  end)

  it("default is read as a boolean", function()
    sweep{label = "conc.select{{'recv', empty}, default = d, timeout = 0.001}",
          short = "select", qual = "conc.select",
          call = function(_, v)
            return table.pack(conc.select{{"recv", conc.chan()}, default = v,
                                          timeout = 0.001})
          end,
          args = {}, pos = 1, skip = function(r) return r.kind == "none" end,
          accept = function(r)
            return returns(r.v and "default" or "timeout")
          end}
  end)

  it("n, when given, must be an integer 0..4096", function()
    sweep{label = "conc.select{{'recv', ready}, n = n, default = true}",
          short = "select", qual = "conc.select",
          call = function(ch, v)
            return table.pack(conc.select{{"recv", ch}, n = v, default = true})
          end,
          fixture = FX.chan, args = {}, pos = 1,
          skip = function(r) return r.kind == "none" end,
          accept = function(r)
            if r.kind == "nil" then
              return function(res, ch)  -- no n: the array's length
                returns(1, "a", true)(res)
                ch:send("a")
              end
            end
            if r.kind == "integer" and r.v == 0 then
              return returns("default")
            end
            return nil  -- negative, too many, or not an integer: raises
          end}
  end)

  it("a NaN timeout raises instead of waiting forever (subprocess)",
    function()
      local out, rc = subprocess([[
        local ok, err = pcall(conc.select,
                              {{"recv", conc.chan()}, timeout = 0/0})
        print("RESULT", ok, err)
      ]], 10)
      assert.are.equal(0, rc, out)
      assert.is_truthy(out:find("RESULT\tfalse\t", 1, true), out)
      assert.is_falsy(out:find("deadlock", 1, true),
        "conc.select{..., timeout = 0/0} waited forever:\n" .. out)
    end)

  it("timeout = 0 with no default gives \"timeout\", as recv(0) does",
    function()
      assert.are.same({nil, nil, "timeout"}, {conc.chan():recv(0)})
      assert.are.equal("timeout",
        conc.select{{"recv", conc.chan()}, timeout = 0})
      assert.are.equal("timeout",
        conc.select{{"recv", conc.chan()}, timeout = -math.huge})
    end)
end)

-- ==== workers ===============================================================

describe("bad input: conc.go and worker handles", function()
  it("conc.go(fn) takes a transferable function", function()
    sweep{label = "conc.go(fn)", short = "go", qual = "conc.go", fn = "go",
          args = {}, pos = 1,
          -- a table in front is the options table: see below
          skip = function(r)
            return r.kind == "table" or r.kind == "mttable"
          end,
          accept = function(r)
            if r.kind == "function" then
              return function(res)
                expect(is_a(res[1], "conc.worker"), "returned %s", show(res))
                expect(res[1]:join() == true, "the worker failed")
              end
            end
          end}
  end)

  it("conc.go(options) without a function blames argument #2", function()
    for _, opts in ipairs({{}, {memory_limit = 1 << 20}}) do
      assert.has_error(function() conc.go(opts) end,
        "conc.go: bad argument #2 (function expected, got no value)")
      assert.has_error(function() conc.go(opts, {}) end,
        "conc.go: bad argument #2 (function expected, got table)")
    end
    -- an object of conc's Lua part is no options table
    assert.has_error(function() conc.go(conc.pool(), print) end,
      "conc.go: the options table must be a plain table (it has a metatable)")
  end)

  it("conc.go{memory_limit = n}: n is nil or a positive integer", function()
    sweep{label = "conc.go({memory_limit = n}, fn)", short = "go",
          qual = "conc.go",
          call = function(_, v)
            return table.pack(conc.go({memory_limit = v},
                                      function() return "ran" end))
          end,
          args = {}, pos = 1, skip = function(r) return r.kind == "none" end,
          accept = function(r)
            local n = r.kind ~= "nil" and math.tointeger(tonumber(r.v))
            if r.kind == "nil" or (r.kind ~= "string" and n and n > 0) then
              return function(res)
                expect(is_a(res[1], "conc.worker"), "returned %s", show(res))
                local j = table.pack(res[1]:join())
                -- a tiny limit may make the worker run out of memory
                expect(j[2] == "ran" or (j[1] == false and
                       tostring(j[2]):find("ran out of memory", 1, true)),
                       "join gave %s", show(j))
              end
            end
          end}
  end)

  it("conc.go(fn, v): v must be transferable and arrives as a copy",
    function()
      sweep{label = "conc.go(function(...) return ... end, v)", short = "go",
            qual = "conc.go",
            call = function(_, ...)
              return table.pack(conc.go(function(...)
                return select("#", ...), ...
              end, ...))
            end,
            args = {}, pos = 1, argn = 2,
            accept = function(r)
              if r.kind == "none" then
                return function(res)
                  returns(true, 0)(table.pack(res[1]:join()))
                end
              end
              if not transferable(r) then return nil end
              return function(res)
                local j = table.pack(res[1]:join())
                expect(j[1] == true and j[2] == 1 and copy_of(r, j[3]),
                       "join gave %s", show(j))
              end
            end}
    end)

  it("h:wait(wait) takes nil, seconds or a conc.ctx", function()
    sweep{label = "h:wait(wait)", short = "wait",
          qual = "conc.worker:wait", method = "wait", fixture = FX.handle,
          args = {}, pos = 1,
          skip = function(r) return r.canceled end,
          accept = function(r)
            if is_absent(r) or is_seconds(r) or r.kind == "conc.ctx" then
              return returns(true)
            end
          end}
  end)

  it("h:wait takes a ctx in place of a timeout, as every blocking call " ..
     "does (docs, Context)", function()
      local h = FX.handle.make()
      local ok, res = pcall(function() return h:wait(conc.background()) end)
      assert(ok, "h:wait(ctx) raised: " .. tostring(res))
      assert.is_true(res)
    end)

  it("every method raises on a self that is not a conc.worker", function()
    sweep_self(FX.handle, "conc.worker", {
      join = {n = 0}, wait = {n = 1, 0}, done = {n = 0}, id = {n = 0},
      status = {n = 0}})
  end)

  it("extra arguments are ignored", function()
    local h = FX.handle.make()
    rows{
      {"h:join(...)", function() return h:join(extra()) end,
       returns(true, 42)},
      {"h:wait(0, ...)", function() return h:wait(0, extra()) end,
       returns(true)},
      {"h:status(...)", function() return h:status(extra()) end,
       returns("done")},
      {"h:id(...)", function() return h:id(extra()) == h:id() end,
       returns(true)},
      {"h:done(...)", function() return h:done(extra()):recv(0) end,
       returns(nil, false)},
      {"conc.id(...)", function() return conc.id(extra()) end, returns(0)},
      {"conc.go(fn, ...) counts nil arguments",
       function()
         return conc.go(function(...) return select("#", ...) end,
                        nil, nil):join()
       end, returns(true, 2)},
    }
  end)
end)

-- ==== time ==================================================================

describe("bad input: time", function()
  it("conc.sleep(seconds, ctx): seconds are a number, not NaN", function()
    sweep{label = "conc.sleep(seconds, canceled ctx)", short = "sleep",
          qual = "conc.sleep",
          call = function(_, s)
            local ctx, cancel = conc.with_cancel(conc.background())
            cancel()
            return table.pack(conc.sleep(s, ctx))
          end,
          args = {}, pos = 1,
          accept = function(r)
            if is_seconds(r) then return returns(nil, "context canceled") end
          end}
  end)

  it("conc.sleep(0, ctx): ctx is nil or a conc.ctx", function()
    sweep{label = "conc.sleep(0, ctx)", short = "sleep", qual = "conc.sleep",
          fn = "sleep", args = {n = 1, 0}, pos = 2,
          accept = function(r)
            if r.canceled then return returns(nil, "context canceled") end
            if is_absent(r) or r.kind == "conc.ctx" then
              return returns(true)
            end
          end}
  end)

  it("conc.sleep with a non-positive duration returns at once", function()
    for _, s in ipairs({0, -1, -math.huge, math.mininteger, -0.0}) do
      assert.are.same({true}, {conc.sleep(s)}, show_value(s))
    end
  end)

  it("conc.after(seconds) takes a number, not NaN", function()
    sweep{label = "conc.after(seconds)", short = "after",
          qual = "conc.after", fn = "after", args = {}, pos = 1,
          accept = function(r)
            if not is_seconds(r) then return nil end
            return function(res)
              expect(is_a(res[1], "conc.chan") and res[1]:cap() == 0,
                     "returned %s", show(res))
            end
          end}
  end)

  it("conc.timer(seconds) takes a number, not NaN", function()
    sweep{label = "conc.timer(seconds)", short = "timer",
          qual = "conc.timer", fn = "timer", args = {}, pos = 1,
          accept = function(r)
            if not is_seconds(r) then return nil end
            return function(res)
              expect(is_a(res[1], "conc.timer"), "returned %s", show(res))
              res[1]:stop()
            end
          end}
  end)

  it("conc.ticker(seconds) takes a positive number", function()
    sweep{label = "conc.ticker(seconds)", short = "ticker",
          qual = "conc.ticker", fn = "ticker", args = {}, pos = 1,
          accept = function(r)
            if not is_seconds(r) or tonumber(r.v) <= 0 then return nil end
            return function(res)
              expect(is_a(res[1], "conc.ticker"), "returned %s", show(res))
              res[1]:stop()
            end
          end}
    assert.has_error(function() conc.ticker(0) end,
      "conc.ticker: bad argument #1 (non-positive interval for conc.ticker)")
  end)

  it("a ticker with a positive interval below 1 ns keeps ticking", function()
    for _, make in ipairs({
      function() return conc.ticker(1e-10) end,
      function() local t = conc.ticker(3600); t:reset(1e-10); return t end,
    }) do
      local t = make()
      local first = table.pack(t.C:recv(2))
      local second = table.pack(t.C:recv(2))
      t:stop()
      assert.is_true(first[2], "no first tick: " .. show(first))
      assert.is_true(second[2],
        "the ticker ticked once and stopped: second recv gave " ..
        show(second))
    end
  end)

  it("timer:reset(seconds) takes a number, not NaN", function()
    sweep{label = "timer:reset(seconds)", short = "reset",
          qual = "conc.timer:reset", method = "reset", fixture = FX.timer,
          args = {}, pos = 1,
          accept = function(r)
            if is_seconds(r) then return returns(true) end
          end}
  end)

  it("ticker:reset(seconds) takes a positive number", function()
    sweep{label = "ticker:reset(seconds)", short = "reset",
          qual = "conc.ticker:reset", method = "reset", fixture = FX.ticker,
          args = {}, pos = 1,
          accept = function(r)
            if is_seconds(r) and tonumber(r.v) > 0 then return returns(true) end
          end}
  end)

  it("indexing a timer with any key other than C or a method gives nil",
    function()
      for _, fx in ipairs({FX.timer, FX.ticker}) do
        local t = fx.make()
        for _, r in ipairs(values()) do
          if r.kind ~= "none" and r.kind ~= "nil" and r.kind ~= "nan" then
            local ok, v = pcall(function() return t[r.v] end)
            assert(ok and v == nil, "t[" .. r.name .. "] gave " ..
                   tostring(v))
          end
        end
        assert.is_nil(t[nil])
        assert.is_true(is_a(t.C, "conc.chan"))
        fx.check(t)
      end
    end)

  it("stop and reset raise on a self that is not a timer or ticker",
    function()
      local accepted = {["conc.timer"] = true, ["conc.ticker"] = true}
      sweep_self(FX.timer, "conc.timer or conc.ticker",
                 {stop = {n = 0}, reset = {n = 1, 3600}}, accepted)
    end)

  it("a stopped timer: stop gives false, no stale value; reset re-arms it",
    function()
      local t = conc.timer(0)
      assert.is_truthy(t.C:recv(5))      -- fired and received
      assert.is_false(t:stop())
      assert.is_false(t:stop(extra()))
      assert.are.same({nil, nil, "would block"}, {t.C:try_recv()})
      assert.are.same({nil, nil, "timeout"}, {t.C:recv(0.01)})
      assert.has_error(function() t:reset(0/0) end)
      assert.has_error(function() t:reset() end)
      assert.is_false(t:stop())          -- the bad resets changed nothing
      assert.is_false(t:reset(0))
      local v, ok = t.C:recv(5)
      assert.is_true(ok)
      assert.are.equal("float", math.type(v))
    end)

  it("a stopped ticker: stop gives false; bad resets leave it stopped",
    function()
      local t = conc.ticker(3600)
      assert.is_true(t:stop())
      assert.is_false(t:stop())
      for _, bad in ipairs({0, -1, -math.huge, 0/0}) do
        assert.has_error(function() t:reset(bad) end)
      end
      assert.is_false(t:stop())
      assert.is_false(t:reset(0.01))     -- re-armed: ticks again
      assert.is_true(select(2, t.C:recv(5)))
      assert.is_true(select(2, t.C:recv(5)))
      assert.is_true(t:stop())
    end)

  it("extra arguments are ignored", function()
    rows{
      {"conc.now(...)", function() return math.type(conc.now(extra())) end,
       returns("float")},
      {"conc.sleep(0, nil, ...)", function() return conc.sleep(0, nil, extra())
       end, returns(true)},
      {"conc.after(0, ...)", function()
         return conc.after(0, extra()):recv(5) ~= nil
       end, returns(true)},
      {"conc.timer(3600, ...)", function()
         return conc.timer(3600, extra()):stop(extra())
       end, returns(true)},
      {"conc.ticker(3600, ...)", function()
         local t = conc.ticker(3600, extra())
         return t:reset(3600, extra()), t:stop()
       end, returns(true, true)},
    }
  end)
end)

-- ==== contexts ==============================================================

describe("bad input: contexts", function()
  for _, name in ipairs({"with_cancel", "with_cancel_cause"}) do
    it(("conc.%s(parent) takes a conc.ctx"):format(name), function()
      sweep{label = ("conc.%s(parent)"):format(name), short = name,
            qual = "conc." .. name, fn = name, args = {}, pos = 1,
            accept = function(r)
              if r.kind ~= "conc.ctx" then return nil end
              return function(res)
                expect(is_a(res[1], "conc.ctx") and
                       is_a(res[2], "conc.cancel"), "returned %s", show(res))
                expect(res[1]:err() == (r.canceled and "context canceled" or
                       nil), "child err() is %s", tostring(res[1]:err()))
                res[2]()
              end
            end}
    end)
  end

  it("called with no name (by pcall), each names itself", function()
    for _, name in ipairs({"with_cancel", "with_cancel_cause"}) do
      local ok, err = pcall(conc[name], "x")
      assert.is_false(ok)
      assert.are.equal(("conc.%s: bad argument #1 (conc.ctx expected, " ..
        "got string)"):format(name), err)
    end
  end)

  it("conc.with_timeout(parent, seconds) and with_deadline(parent, t) " ..
     "take a conc.ctx", function()
      for _, name in ipairs({"with_timeout", "with_deadline"}) do
        sweep{label = ("conc.%s(parent, 3600)"):format(name), short = name,
              qual = "conc." .. name, fn = name, args = {n = 2, nil, 3600},
              pos = 1,
              accept = function(r)
                if r.kind ~= "conc.ctx" then return nil end
                return function(res)
                  expect(is_a(res[1], "conc.ctx"), "returned %s", show(res))
                  res[2]()
                end
              end}
      end
    end)

  it("conc.with_timeout(parent, seconds) takes a number, not NaN",
    function()
      sweep{label = "conc.with_timeout(bg, seconds)", short = "with_timeout",
            qual = "conc.with_timeout", fn = "with_timeout",
            args = {n = 1, conc.background()}, pos = 2,
            accept = function(r)
              if not is_seconds(r) then return nil end
              return function(res)
                local over = tonumber(r.v) <= 0
                expect(res[1]:err() ==
                       (over and "context deadline exceeded" or nil),
                       "err() is %s", tostring(res[1]:err()))
                res[2]()
              end
            end}
    end)

  it("conc.with_deadline(parent, t) takes a number, not NaN", function()
    sweep{label = "conc.with_deadline(bg, t)", short = "with_deadline",
          qual = "conc.with_deadline", fn = "with_deadline",
          args = {n = 1, conc.background()}, pos = 2,
          accept = function(r)
            if not is_seconds(r) then return nil end
            return function(res)
              local over = tonumber(r.v) <= conc.now()
              expect(res[1]:err() ==
                     (over and "context deadline exceeded" or nil),
                     "err() is %s", tostring(res[1]:err()))
              res[2]()
            end
          end}
  end)

  it("conc.with_value(parent, key, v): key is a string, number, boolean " ..
     "or conc object", function()
      sweep{label = "conc.with_value(bg, key, 'v')", short = "with_value",
            qual = "conc.with_value", fn = "with_value",
            args = {n = 3, conc.background(), nil, "v"}, pos = 2,
            accept = function(r)
              if not is_ctx_key(r) then return nil end
              return function(res)
                expect(res[1]:value(r.v) == "v", "value(key) is %s",
                       tostring(res[1]:value(r.v)))
              end
            end}
    end)

  it("conc.with_value(parent, 'k', v): v must be given and transferable",
    function()
      sweep{label = "conc.with_value(bg, 'k', v)", short = "with_value",
            qual = "conc.with_value", fn = "with_value",
            args = {n = 2, conc.background(), "k"}, pos = 3,
            accept = function(r)
              if not transferable(r) and r.kind ~= "nil" then return nil end
              return function(res)
                expect(copy_of(r, res[1]:value("k")), "value('k') is %s",
                       show_value(res[1]:value("k")))
              end
            end}
    end)

  it("conc.with_value(parent, ...) takes a conc.ctx", function()
    sweep{label = "conc.with_value(parent, 'k', 1)", short = "with_value",
          qual = "conc.with_value", fn = "with_value",
          args = {n = 3, nil, "k", 1}, pos = 1,
          accept = function(r)
            if r.kind == "conc.ctx" then
              return function(res)
                expect(res[1]:value("k") == 1, "no value")
              end
            end
          end}
  end)

  it("ctx:value(key): key as for with_value; absent gives nil", function()
    sweep{label = "ctx:value(key)", short = "value", qual = "conc.ctx:value",
          method = "value", fixture = FX.ctx, args = {}, pos = 1,
          accept = function(r)
            if is_ctx_key(r) then return returns(nil) end
          end}
  end)

  it("cancel(cause): any cause cancels; one that cannot travel is its " ..
     "text", function()
      sweep{label = "cancel(cause)", short = "cancel", qual = "conc.cancel",
            call = function(pair, ...) return table.pack(pair.cancel(...)) end,
            fixture = {
              make = function()
                local ctx, cancel = conc.with_cancel(conc.background())
                return {ctx = ctx, cancel = cancel}
              end,
              check = function(pair)
                pair.cancel()
                expect(pair.ctx:err() == "context canceled", "not canceled")
              end,
            },
            args = {}, pos = 1,
            accept = function(r, pair)
              return function(res)
                returns()(res)
                expect(pair.ctx:err() == "context canceled", "not canceled")
                local cause = pair.ctx:cause()
                if is_absent(r) then
                  expect(cause == "context canceled", "cause is %s",
                         show_value(cause))
                elseif transferable(r) then
                  expect(copy_of(r, cause), "cause is %s", show_value(cause))
                else -- as Go's cancel, it cancels: the cause is its text
                  expect(cause == tostring(r.v), "cause is %s",
                         show_value(cause))
                end
              end
            end}
    end)

  it("every ctx method raises on a self that is not a conc.ctx", function()
    sweep_self(FX.ctx, "conc.ctx", {
      done = {n = 0}, err = {n = 0}, deadline = {n = 0}, value = {n = 1, "k"},
      cause = {n = 0}})
  end)

  it("extra arguments are ignored", function()
    local ctx, cancel = conc.with_cancel(conc.background())
    rows{
      {"conc.background(...)", function()
         return conc.background(extra()) == conc.background()
       end, returns(true)},
      {"conc.todo(...)", function() return conc.todo(extra()):err() end,
       returns(nil)},
      {"ctx:err(...)", function() return ctx:err(extra()) end, returns(nil)},
      {"ctx:deadline(...)", function() return ctx:deadline(extra()) end,
       returns(nil, false)},
      {"ctx:value('k', ...)", function() return ctx:value("k", extra()) end,
       returns(nil)},
      {"ctx:done(...)", function() return ctx:done(extra()):len() end,
       returns(0)},
      {"cancel('why', ...)", function() return cancel("why", extra()) end,
       returns()},
      {"ctx:cause(...)", function() return ctx:cause(extra()) end,
       returns("why")},
      {"conc.with_timeout(bg, 3600, ...)", function()
         return conc.with_timeout(conc.background(), 3600, extra()):err()
       end, returns(nil)},
    }
  end)
end)

describe("bad input: a canceled context", function()
  local function canceled()
    local ctx, cancel = conc.with_cancel(conc.background())
    cancel("first cause")
    return ctx, cancel
  end

  it("cancel again, with any cause, changes nothing", function()
    local ctx, cancel = canceled()
    cancel()
    cancel("second cause")
    cancel(nil)
    do local _ <close> = cancel end
    assert.are.equal("context canceled", ctx:err())
    assert.are.equal("first cause", ctx:cause())
    assert.are.same({nil, false}, {ctx:deadline()})
  end)

  it("children made from it are born canceled, with its cause", function()
    local ctx = canceled()
    local c1 = conc.with_cancel(ctx)
    local c2 = conc.with_timeout(ctx, 3600)
    local c3 = conc.with_deadline(ctx, conc.now() + 3600)
    local c4 = conc.with_value(ctx, "k", "v")
    for i, c in ipairs({c1, c2, c3, c4}) do
      assert.are.equal("context canceled", c:err(), "child " .. i)
      assert.are.equal("first cause", c:cause(), "child " .. i)
      assert.are.same({nil, false}, {c:done():recv(0)}, "child " .. i)
    end
    assert.are.equal("v", c4:value("k"))
  end)

  it("every call bounded by it fails with its error", function()
    local ctx = canceled()
    local ch = conc.chan(1)
    assert.are.same({nil, "context canceled"}, {ch:send(1, ctx)})
    assert.are.equal(0, #ch)
    ch:send(1)
    assert.are.same({nil, nil, "context canceled"}, {ch:recv(ctx)})
    assert.are.equal(1, #ch)
    assert.are.same({nil, "context canceled"}, {conc.sleep(0, ctx)})
    assert.are.same({nil, "context canceled"}, {conc.sleep(3600, ctx)})
    local wg = conc.waitgroup()
    wg:add()
    assert.are.same({nil, "context canceled"}, {wg:wait(ctx)})
    assert.are.equal(1, wg:count())
    assert.are.same({1, nil, false},
      {conc.select{{"recv", ctx:done()}, {"recv", conc.chan()}}})
  end)

  it("wg:wait(ctx) fails even when the counter is zero (docs: a canceled " ..
     "context fails the call even if the operation could proceed)",
    function()
      local ctx = canceled()
      assert.are.same({nil, "context canceled"},
        {conc.waitgroup():wait(ctx)})
    end)

  it("a deadline-exceeded context fails calls with its own error",
    function()
      local bg = conc.background()
      for _, ctx in ipairs({(conc.with_timeout(bg, 0)),
                            (conc.with_timeout(bg, -math.huge)),
                            (conc.with_deadline(bg, 0)),
                            (conc.with_deadline(bg, -math.huge))}) do
        assert.are.equal("context deadline exceeded", ctx:err())
        assert.are.same({nil, nil, "context deadline exceeded"},
          {conc.chan(1):recv(ctx)})
        assert.are.same({nil, "context deadline exceeded"},
          {conc.sleep(1, ctx)})
      end
    end)
end)

-- ==== sync ==================================================================

describe("bad input: conc.waitgroup", function()
  it("wg:add(delta) takes nothing, nil or an integer; below zero raises, " ..
     "leaving the counter", function()
      sweep{label = "wg:add(delta)", short = "add",
            qual = "conc.waitgroup:add", method = "add", fixture = FX.wg0,
            args = {}, pos = 1,
            accept = function(r)
              local d
              if is_absent(r) then d = 1
              elseif r.kind == "numstring" then d = 1
              elseif r.kind == "integer" then d = r.v
              elseif r.kind == "float" and math.tointeger(r.v) then
                d = math.tointeger(r.v)
              end
              if d == nil or d < 0 then return nil end
              return function(res, wg)
                returns()(res)
                expect(wg:count() == d, "count %d, expected %d", wg:count(), d)
                wg:add(-d)
              end
            end}
      local wg = conc.waitgroup()
      assert.has_error(function() wg:add(-1) end,
        "conc.waitgroup:add: sync: negative WaitGroup counter")
      assert.has_error(function() wg:done() end,
        "conc.waitgroup:done: sync: negative WaitGroup counter")
      assert.are.equal(0, wg:count())
    end)

  it("wg:wait(wait) takes nil, seconds or a conc.ctx", function()
    sweep{label = "wg:wait(wait) at zero", short = "wait",
          qual = "conc.waitgroup:wait", method = "wait", fixture = FX.wg0,
          args = {}, pos = 1,
          -- a canceled ctx: covered by its own test (the docs' rule)
          skip = function(r) return r.canceled end,
          accept = function(r)
            if is_absent(r) or r.kind == "conc.ctx" or is_seconds(r) then
              return returns(true)
            end
          end}
  end)

  it("wg:wait with a non-positive timeout polls", function()
    local wg = conc.waitgroup()
    wg:add(2)
    for _, t in ipairs({0, -1, -math.huge, math.mininteger}) do
      assert.are.same({nil, "timeout"}, {wg:wait(t)}, show_value(t))
    end
    assert.are.equal(2, wg:count())
  end)

  it("an add that overflows the counter raises and leaves it (subprocess)",
    function()
      local out, rc = subprocess([[
        local wg = conc.waitgroup()
        wg:add(math.maxinteger)
        local ok, err = pcall(wg.add, wg, 1)
        print("RESULT", ok, err, wg:count() == math.maxinteger)
      ]])
      assert.are.equal(0, rc, "the process died:\n" .. out)
      assert.is_falsy(out:find("runtime error", 1, true), out)
      assert.is_truthy(out:find("RESULT\tfalse\tconc.waitgroup:add: ", 1,
                                true), out)
      assert.is_truthy(out:find("\ttrue\n", 1, true), out)
    end)

  it("every method raises on a self that is not a conc.waitgroup", function()
    sweep_self(FX.wg0, "conc.waitgroup", {
      add = {n = 1, 1}, done = {n = 0}, wait = {n = 1, 0}, count = {n = 0}})
  end)

  it("extra arguments are ignored", function()
    local wg = conc.waitgroup(extra())
    rows{
      {"wg:add(2, ...)", function() return wg:add(2, extra()) end, returns()},
      {"wg:count(...)", function() return wg:count(extra()) end, returns(2)},
      {"wg:done(...)", function() return wg:done(extra()) end, returns()},
      {"wg:wait(0, ...)", function() return wg:wait(0, extra()) end,
       returns(nil, "timeout")},
      {"wg:done()", function() return wg:done() end, returns()},
      {"wg:wait(nil, ...)", function() return wg:wait(nil, extra()) end,
       returns(true)},
    }
  end)
end)

describe("bad input: conc.mutex", function()
  it("every method raises on a self that is not a conc.mutex", function()
    sweep_self(FX.mutex, "conc.mutex", {
      lock = {n = 0}, unlock = {n = 0}, try_lock = {n = 0}, guard = {n = 0}})
  end)

  it("unlock of an unlocked mutex raises and leaves it unlocked", function()
    local mu = conc.mutex()
    assert.has_error(function() mu:unlock() end,
      "conc.mutex:unlock: sync: unlock of unlocked mutex")
    assert.has_error(function() mu:unlock(extra()) end,
      "conc.mutex:unlock: sync: unlock of unlocked mutex")
    FX.mutex.check(mu)
  end)

  it("a locked mutex stays locked through bad calls", function()
    local mu = conc.mutex()
    mu:lock()
    local proto = conc.mutex()
    for _, r in ipairs(values()) do
      if r.kind ~= "conc.mutex" and r.kind ~= "none" then
        assert.has_error(function() proto.unlock(r.v) end, nil, r.name)
        assert.has_error(function() proto.try_lock(r.v) end, nil, r.name)
      end
    end
    assert.is_false(mu:try_lock())
    mu:unlock()
    FX.mutex.check(mu)
    FX.mutex.check(proto)
  end)

  it("a guard unlocks once, however often it is closed", function()
    local mu = conc.mutex()
    local g = mu:guard(extra())
    assert.is_false(mu:try_lock())
    local close = getmetatable(g).__close
    close(g)
    close(g)
    assert.is_true(mu:try_lock())  -- locked again, by us
    do local _ <close> = g end     -- the used guard leaves it alone
    assert.is_false(mu:try_lock())
    mu:unlock()
    FX.mutex.check(mu)
  end)

  it("a guard's __close raises on anything but a guard", function()
    local close = getmetatable(conc.mutex():guard()).__close
    for _, r in ipairs(values()) do
      if r.name ~= "a conc.guard" and r.kind ~= "none" then
        local ok, err = pcall(close, r.v)
        assert(not ok and tostring(err):find("conc.guard expected", 1, true),
               "__close(" .. r.name .. "): " .. tostring(err))
      end
    end
  end)

  it("extra arguments are ignored", function()
    local mu = conc.mutex(extra())
    rows{
      {"mu:lock(...)", function() return mu:lock(extra()) end, returns()},
      {"mu:try_lock(...)", function() return mu:try_lock(extra()) end,
       returns(false)},
      {"mu:unlock(...)", function() return mu:unlock(extra()) end, returns()},
      {"mu:try_lock(...) again", function() return mu:try_lock(extra()) end,
       returns(true)},
      {"mu:unlock()", function() return mu:unlock() end, returns()},
    }
  end)
end)

describe("bad input: conc.rwmutex", function()
  it("every method raises on a self that is not a conc.rwmutex", function()
    sweep_self(FX.rwmutex, "conc.rwmutex", {
      lock = {n = 0}, unlock = {n = 0}, rlock = {n = 0}, runlock = {n = 0},
      try_lock = {n = 0}, try_rlock = {n = 0}, guard = {n = 0},
      rguard = {n = 0}})
  end)

  it("unlocks that do not match the lock raise Go's messages and change " ..
     "nothing", function()
      local rw = conc.rwmutex()
      assert.has_error(function() rw:unlock() end,
        "conc.rwmutex:unlock: sync: Unlock of unlocked RWMutex")
      assert.has_error(function() rw:runlock() end,
        "conc.rwmutex:runlock: sync: RUnlock of unlocked RWMutex")
      rw:rlock()
      assert.has_error(function() rw:unlock() end,
        "conc.rwmutex:unlock: sync: Unlock of unlocked RWMutex")
      assert.is_false(rw:try_lock())   -- still read-locked
      rw:runlock()
      rw:lock()
      assert.has_error(function() rw:runlock() end,
        "conc.rwmutex:runlock: sync: RUnlock of unlocked RWMutex")
      assert.is_false(rw:try_rlock())  -- still write-locked
      rw:unlock()
      FX.rwmutex.check(rw)
    end)

  it("guards unlock once", function()
    local rw = conc.rwmutex()
    local g = rw:rguard(extra())
    local close = getmetatable(g).__close
    close(g)
    close(g)
    g = rw:guard(extra())
    close(g)
    close(g)
    FX.rwmutex.check(rw)
  end)

  it("extra arguments are ignored", function()
    local rw = conc.rwmutex(extra())
    rows{
      {"rw:rlock(...)", function() return rw:rlock(extra()) end, returns()},
      {"rw:try_rlock(...)", function() return rw:try_rlock(extra()) end,
       returns(true)},
      {"rw:try_lock(...)", function() return rw:try_lock(extra()) end,
       returns(false)},
      {"rw:runlock(...)", function() return rw:runlock(extra()) end,
       returns()},
      {"rw:runlock(...) again", function() return rw:runlock(extra()) end,
       returns()},
      {"rw:lock(...)", function() return rw:lock(extra()) end, returns()},
      {"rw:unlock(...)", function() return rw:unlock(extra()) end, returns()},
    }
  end)
end)

describe("bad input: conc.cond", function()
  it("conc.cond(mu) takes a conc.mutex", function()
    sweep{label = "conc.cond(mu)", short = "cond", qual = "conc.cond",
          fn = "cond", args = {}, pos = 1,
          accept = function(r)
            if r.kind ~= "conc.mutex" then return nil end
            return function(res)
              expect(is_a(res[1], "conc.cond") and rawequal(res[1].L, r.v),
                     "returned %s", show(res))
            end
          end}
  end)

  it("every method raises on a self that is not a conc.cond", function()
    sweep_self(FX.cond, "conc.cond", {
      wait = {n = 0}, signal = {n = 0}, broadcast = {n = 0}})
  end)

  it("wait with its mutex unlocked raises and leaves it unlocked", function()
    local c = FX.cond.make()
    assert.has_error(function() c:wait() end,
      "conc.cond:wait: sync: unlock of unlocked mutex")
    assert.has_error(function() c:wait(extra()) end,
      "conc.cond:wait: sync: unlock of unlocked mutex")
    FX.cond.check(c)
  end)

  it("indexing a cond with any key other than L or a method gives nil",
    function()
      local c = FX.cond.make()
      for _, r in ipairs(values()) do
        if r.kind ~= "none" and r.kind ~= "nil" and r.kind ~= "nan" then
          local ok, v = pcall(function() return c[r.v] end)
          assert(ok and v == nil, "c[" .. r.name .. "] gave " .. tostring(v))
        end
      end
      FX.cond.check(c)
    end)

  it("extra arguments are ignored", function()
    local c = conc.cond(conc.mutex(), extra())
    rows{
      {"c:signal(...)", function() return c:signal(extra()) end, returns()},
      {"c:broadcast(...)", function() return c:broadcast(extra()) end,
       returns()},
    }
    FX.cond.check(c)
  end)
end)

describe("bad input: conc.once", function()
  it("once:call(fn) takes a function; a refused call leaves it unrun",
    function()
      sweep{label = "once:call(fn)", short = "call", qual = "conc.once:call",
            method = "call", fixture = FX.once, args = {}, pos = 1,
            -- a function is run by the call: see the test below
            skip = function(r)
              return r.kind == "function" or r.kind == "cclosure"
            end,
            accept = function() return nil end}
      for _, fn in ipairs({function() end, os.clock,
                           coroutine.wrap(function() end)}) do
        local o = conc.once()
        local first = table.pack(o:call(fn))
        local again = table.pack(o:call(function() return "again" end))
        assert(same_results(first, again), "once:call ran twice: " ..
               show(first) .. " then " .. show(again))
      end
    end)

  it("once:call(fn, v): the runner gets its values; results that cannot " ..
     "travel are an error for every other caller", function()
      sweep{label = "once:call(function(x) return x end, v)", short = "call",
            qual = "conc.once:call",
            call = function(o, ...)
              return table.pack(o:call(function(...) return ... end, ...))
            end,
            fixture = {make = function() return conc.once() end,
                       check = function() end},
            args = {}, pos = 1,
            accept = function(r)
              return function(res, o)
                if r.kind == "none" then
                  returns()(res)
                else
                  expect(res.n == 1 and same(res[1], r.v),
                         "the runner got %s, not the value itself", show(res))
                end
                if transferable(r) or r.kind == "none" then
                  local again = table.pack(o:call(function() return "x" end))
                  expect(again.n == res.n and (res.n == 0 or
                         copy_of(r, again[1])), "a later call got %s",
                         show(again))
                else
                  local ok, err = pcall(o.call, o, function() return "x" end)
                  expect(not ok and tostring(err):find(
                         "conc.once:call: result #1: cannot transfer", 1,
                         true), "a later call got %s", tostring(err))
                end
              end
            end}
    end)

  it("a refused result is raised to later callers", function()
    local o = conc.once()
    local msg = "conc.once:call: result #1: cannot transfer a coroutine"
    local ok, co = pcall(o.call, o, coroutine.create, print)
    assert.is_true(ok)
    assert.equal("thread", type(co))  -- the runner's own value
    local err
    ok, err = pcall(o.call, o, function() return 1 end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find(msg, 1, true), err)
  end)

  it("an error value whose __tostring fails does not leave the once " ..
     "stuck (subprocess)", function()
      local out, rc = subprocess([[
        local once = conc.once()
        local bad = setmetatable({}, {__tostring = function()
          error("tostring fails")
        end})
        print("FIRST", (pcall(once.call, once, function() error(bad) end)))
        print("SECOND", (pcall(once.call, once, function() return 1 end)))
      ]], 10)
      assert.is_truthy(out:find("FIRST\tfalse", 1, true), out)
      assert.is_falsy(out:find("deadlock", 1, true),
        "a later once:call waits forever:\n" .. out)
      assert.is_truthy(out:find("SECOND\tfalse", 1, true), out)
      assert.are.equal(0, rc, out)
    end)

  it("call raises on a self that is not a conc.once", function()
    sweep_self(FX.once, "conc.once", {call = {n = 1, function() end}})
  end)
end)

describe("bad input: conc.pool", function()
  it("conc.pool(opts) takes nothing, nil or a table", function()
    sweep{label = "conc.pool(opts)", short = "pool", qual = "conc.pool",
          fn = "pool", args = {}, pos = 1,
          accept = function(r)
            -- a table of options: a pool's own fields are not options
            if is_absent(r) or r.kind == "table" or
               (r.kind == "mttable" and r.name ~= "a conc.pool") then
              return function(res)
                expect(tostring(res[1]):find("^conc.pool"), "returned %s",
                       show(res))
              end
            end
          end}
  end)

  it("conc.pool(opts) refuses an unknown option", function()
    assert.has_error(function() conc.pool{nwe = print} end,
      "conc.pool: unknown option 'nwe' (the one option is new)")
  end)

  it("conc.pool{new = fn}: new is nil or a function", function()
    sweep{label = "conc.pool{new = fn}", short = "pool", qual = "conc.pool",
          call = function(_, v) return table.pack(conc.pool{new = v}) end,
          args = {}, pos = 1, skip = function(r) return r.kind == "none" end,
          accept = function(r)
            if r.kind == "nil" or r.kind == "function" or
               r.kind == "cclosure" then
              return function(res)
                expect(#res[1] == 0, "a new pool is not empty")
              end
            end
          end}
  end)

  it("pool:put(x) takes any value; nil is ignored", function()
    sweep{label = "pool:put(x)", short = "put", qual = "conc.pool:put",
          method = "put", fixture = FX.pool, args = {}, pos = 1,
          accept = function(r)
            return function(res, p)
              returns()(res)
              if is_absent(r) then
                expect(#p == 1, "#pool is %d after put(nil)", #p)
              else
                expect(#p == 2, "#pool is %d, not 2", #p)
                expect(same(p:get(), r.v), "get did not give the value back")
              end
            end
          end}
  end)

  it("get and put raise, naming the method, on a self that is not a pool",
    function()
      sweep_self(FX.pool, "conc.pool", {get = {n = 0}, put = {n = 1, 1}},
                 function(r) return r.name == "a conc.pool" end)
    end)

  it("extra arguments are ignored", function()
    local p = conc.pool({new = function() return "n" end}, extra())
    rows{
      {"p:put('x', ...)", function() return p:put("x", extra()) end,
       returns()},
      {"#p", function() return #p end, returns(1)},
      {"p:get(...)", function() return p:get(extra()) end, returns("x")},
      {"p:get(...) from new", function() return p:get(extra()) end,
       returns("n")},
    }
  end)
end)

-- ==== maps ==================================================================

describe("bad input: conc.map", function()
  local key_methods = {
    {"load", {}, function() return returns(nil, false) end},
    {"load_and_delete", {}, function() return returns(nil, false) end},
    {"delete", {}, function() return returns() end},
    {"store", {n = 2, nil, 1}, function(r)
       return function(res, m)
         returns()(res)
         expect(m:load(r.v) == 1, "not stored")
         m:delete(r.v)
       end
     end},
    {"load_or_store", {n = 2, nil, 1}, function(r)
       return function(res, m)
         returns(1, false)(res)
         m:delete(r.v)
       end
     end},
    {"swap", {n = 2, nil, 1}, function(r)
       return function(res, m)
         returns(nil, false)(res)
         m:delete(r.v)
       end
     end},
    {"compare_and_swap", {n = 3, nil, 1, 2},
     function() return returns(false) end},
    {"compare_and_delete", {n = 2, nil, 1},
     function() return returns(false) end},
  }
  for _, km in ipairs(key_methods) do
    local m, args, ok = km[1], km[2], km[3]
    it(("m:%s: the key is a string, number (not NaN) or boolean"):format(m),
      function()
        sweep{label = ("m:%s(key, ...)"):format(m), short = m,
              qual = "conc.map:" .. m, method = m, fixture = FX.map,
              args = args, pos = 1,
              accept = function(r)
                if r.v == "a" then return nil end
                if is_map_key(r) then return ok(r) end
              end}
      end)
  end

  it("m:store('k', v): v must be given and transferable (nil is a value)",
    function()
      sweep{label = "m:store('k', v)", short = "store",
            qual = "conc.map:store", method = "store", fixture = FX.map,
            args = {n = 1, "k"}, pos = 2,
            accept = function(r)
              if not transferable(r) and r.kind ~= "nil" then return nil end
              return function(res, m)
                returns()(res)
                local v, found = m:load("k")
                expect(found and copy_of(r, v), "load('k') gave %s, %s",
                       show_value(v), tostring(found))
                m:delete("k")
              end
            end}
    end)

  it("m:load_or_store('k', v) and m:swap('a', v): v must be given and " ..
     "transferable", function()
      sweep{label = "m:load_or_store('k', v)", short = "load_or_store",
            qual = "conc.map:load_or_store", method = "load_or_store",
            fixture = FX.map, args = {n = 1, "k"}, pos = 2,
            accept = function(r)
              if not transferable(r) and r.kind ~= "nil" then return nil end
              return function(res, m)
                expect(res.n == 2 and rawequal(res[1], r.v) or
                       (r.kind == "nan" and res[1] ~= res[1]),
                       "returned %s, not v itself", show(res))
                expect(res[2] == false, "loaded")
                m:delete("k")
              end
            end}
      sweep{label = "m:swap('a', v)", short = "swap", qual = "conc.map:swap",
            method = "swap", fixture = FX.map, args = {n = 1, "a"}, pos = 2,
            accept = function(r)
              if not transferable(r) and r.kind ~= "nil" then return nil end
              return function(res, m)
                returns(1, true)(res)
                expect(copy_of(r, (m:load("a"))), "not swapped in")
                m:store("a", 1)
              end
            end}
    end)

  it("compare_and_swap / compare_and_delete: old and new must be given " ..
     "and transferable", function()
      sweep{label = "m:compare_and_swap('a', old, 2)",
            short = "compare_and_swap", qual = "conc.map:compare_and_swap",
            method = "compare_and_swap", fixture = FX.map,
            args = {n = 3, "a", nil, 2}, pos = 2,
            accept = function(r)
              if transferable(r) or r.kind == "nil" then
                return returns(false)
              end
            end}
      sweep{label = "m:compare_and_swap('a', 1, new)",
            short = "compare_and_swap", qual = "conc.map:compare_and_swap",
            method = "compare_and_swap", fixture = FX.map,
            args = {n = 2, "a", 1}, pos = 3,
            accept = function(r)
              if not transferable(r) and r.kind ~= "nil" then return nil end
              return function(res, m)
                returns(true)(res)
                expect(copy_of(r, (m:load("a"))), "not swapped in")
                m:store("a", 1)
              end
            end}
      sweep{label = "m:compare_and_delete('a', old)",
            short = "compare_and_delete",
            qual = "conc.map:compare_and_delete",
            method = "compare_and_delete", fixture = FX.map,
            args = {n = 1, "a"}, pos = 2,
            accept = function(r)
              if transferable(r) or r.kind == "nil" then
                return returns(false)
              end
            end}
    end)

  it("m:range(fn) takes a function", function()
    sweep{label = "m:range(fn)", short = "range", qual = "conc.map:range",
          method = "range", fixture = FX.map, args = {}, pos = 1,
          accept = function(r)
            if r.kind == "function" or r.kind == "cclosure" then
              return returns()
            end
          end}
  end)

  it("an error in range's fn propagates and leaves the map", function()
    local m = FX.map.make()
    assert.has_error(function() m:range(function() error("boom", 0) end) end,
      "boom")
    assert.has_error(function()
      coroutine.wrap(function()
        m:range(function() coroutine.yield() end)
      end)()
    end)
    FX.map.check(m)
  end)

  it("every method raises on a self that is not a conc.map", function()
    sweep_self(FX.map, "conc.map", {
      load = {n = 1, "a"}, store = {n = 2, "a", 1},
      load_or_store = {n = 2, "a", 1}, load_and_delete = {n = 1, "a"},
      delete = {n = 1, "a"}, swap = {n = 2, "a", 1},
      compare_and_swap = {n = 3, "a", 1, 2},
      compare_and_delete = {n = 2, "a", 1}, range = {n = 1, print},
      len = {n = 0}, clear = {n = 0}})
  end)

  it("extra arguments are ignored", function()
    local m = conc.map(extra())
    rows{
      {"m:store('a', 1, ...)", function() return m:store("a", 1, extra()) end,
       returns()},
      {"m:load('a', ...)", function() return m:load("a", extra()) end,
       returns(1, true)},
      {"m:len(...)", function() return m:len(extra()) end, returns(1)},
      {"m:swap('a', 2, ...)", function() return m:swap("a", 2, extra()) end,
       returns(1, true)},
      {"m:compare_and_swap('a', 2, 3, ...)", function()
         return m:compare_and_swap("a", 2, 3, extra())
       end, returns(true)},
      {"m:compare_and_delete('a', 3, ...)", function()
         return m:compare_and_delete("a", 3, extra())
       end, returns(true)},
      {"m:load_or_store('b', 1, ...)", function()
         return m:load_or_store("b", 1, extra())
       end, returns(1, false)},
      {"m:range(fn, ...)", function()
         local n = 0
         m:range(function() n = n + 1 end, extra())
         return n
       end, returns(1)},
      {"m:load_and_delete('b', ...)", function()
         return m:load_and_delete("b", extra())
       end, returns(1, true)},
      {"m:store('c', 1); m:clear(...)", function()
         m:store("c", 1)
         m:delete("zz", extra())
         m:clear(extra())
         return #m
       end, returns(0)},
    }
  end)
end)

-- ==== issue 12: semaphore, errgroup, atomic, defer =========================

describe("bad input: conc.semaphore, conc.errgroup, conc.atomic, conc.defer",
  function()
  local FXS = {  -- a semaphore of 2, nothing held
    make = function() return conc.semaphore(2) end,
    check = function(s)
      expect(s:held() == 0, "holds %d", s:held())
      expect(s:try_acquire(2), "cannot take its size")
      s:release(2)
    end,
  }
  local FXG = {  -- an errgroup with nothing running
    make = function() return (conc.errgroup()) end,
    check = function(g)
      expect(g:running() == 0, "%d running", g:running())
      expect(g:wait() == true, "wait is not true")
    end,
  }
  local FXA = {  -- an atomic holding 7
    make = function() return conc.atomic(7) end,
    check = function(a) expect(a:load() == 7, "holds %d", a:load()) end,
  }

  it("every method raises on a self of another type", function()
    sweep_self(FXS, "conc.semaphore", {
      acquire = {n = 0}, try_acquire = {n = 0}, release = {n = 0},
      guard = {n = 0}, size = {n = 0}, held = {n = 0}})
    sweep_self(FXG, "conc.errgroup", {
      go = {n = 1, function() end}, try_go = {n = 1, function() end},
      set_limit = {n = 1, 1}, wait = {n = 0}, errors = {n = 0},
      limit = {n = 0}, running = {n = 0}})
    sweep_self(FXA, "conc.atomic", {
      load = {n = 0}, store = {n = 1, 1}, add = {n = 1, 1},
      swap = {n = 1, 1}, compare_and_swap = {n = 2, 1, 2}})
  end)

  it("weights, sizes and values are integers; waits are nil, s or ctx",
    function()
      local s = conc.semaphore(2)
      for _, bad in ipairs({"x", 1.5, {}, true, -1}) do
        expect(not pcall(conc.semaphore, bad), "semaphore(%s)", show_value(bad))
        expect(not pcall(s.acquire, s, bad), "acquire(%s)", show_value(bad))
        expect(not pcall(s.try_acquire, s, bad), "try_acquire(%s)",
               show_value(bad))
        expect(not pcall(s.release, s, bad), "release(%s)", show_value(bad))
        expect(not pcall(s.guard, s, bad), "guard(%s)", show_value(bad))
      end
      for _, bad in ipairs({"x", {}, true, 0 / 0}) do
        expect(not pcall(s.acquire, s, 1, bad), "acquire(1, %s)",
               show_value(bad))
        local g0 = conc.errgroup()
        expect(not pcall(g0.wait, g0, bad), "wait(%s)", show_value(bad))
      end
      FXS.check(s)
      local a = conc.atomic()
      for _, bad in ipairs({"x", 1.5, {}, true}) do
        expect(not pcall(conc.atomic, bad), "atomic(%s)", show_value(bad))
        expect(not pcall(a.store, a, bad), "store(%s)", show_value(bad))
        expect(not pcall(a.add, a, bad), "add(%s)", show_value(bad))
      end
      local g = conc.errgroup()
      for _, bad in ipairs({"x", 1, {}, true}) do
        expect(not pcall(conc.errgroup, bad), "errgroup(%s)", show_value(bad))
        expect(not pcall(g.go, g, bad), "go(%s)", show_value(bad))
        expect(not pcall(g.try_go, g, bad), "try_go(%s)", show_value(bad))
        expect(not pcall(conc.defer, bad), "defer(%s)", show_value(bad))
      end
      FXG.check(g)
    end)

  it("extra arguments are ignored", function()
    rows{
      {"conc.semaphore(1, ...)", function()
         return conc.semaphore(1, extra()):size() end, returns(1)},
      {"conc.atomic(1, ...)", function()
         return conc.atomic(1, extra()):load() end, returns(1)},
      {"g:wait(nil, ...)", function()
         return conc.errgroup():wait(nil, extra()) end, returns(true)},
    }
  end)
end)

-- ==== module functions ======================================================

describe("bad input: conc.limiter and conc.breaker", function()
  -- An integer as luaL_checkinteger reads it (a float with an integer
  -- value, or a numeric string, too).
  local function is_int(r)
    if r.kind == "integer" or r.kind == "numstring" then return true end
    return r.kind == "float" and r.v == math.floor(r.v) and
           r.v ~= math.huge and r.v ~= -math.huge
  end
  local function nonneg(r) return tonumber(r.v) >= 0 end
  local function a(tname)
    return function(res)
      expect(is_a(res[1], tname), "returned %s", show(res))
    end
  end
  -- A limiter that (in a test's time) never refills, holding 5 tokens or
  -- fewer. (Rate 0 is x/time/rate's special case, which spends the burst.)
  local FXL = {
    make = function() return conc.limiter(1e-9, 5) end,
    check = function(lim)
      expect(lim:burst() == 5 and lim:limit() == 1e-9, "burst %s, limit %s",
             tostring(lim:burst()), tostring(lim:limit()))
      expect(lim:tokens() <= 5 and lim:allow(0), "broken: %s tokens",
             tostring(lim:tokens()))
    end,
  }
  local FXB = {
    make = function() return conc.breaker{failures = 1} end,
    check = function(cb)
      expect(cb:state() == "closed", "state %s", cb:state())
      expect(cb:call(function() return "x" end) == "x", "call is broken")
    end,
  }

  it("conc.limiter(rate, burst): rate >= 0, burst an integer >= 0", function()
    sweep{label = "conc.limiter(rate, 1)", short = "limiter",
          qual = "conc.limiter", fn = "limiter", args = {n = 2, nil, 1},
          pos = 1, accept = function(r)
            return is_seconds(r) and nonneg(r) and a("conc.limiter") or nil
          end}
    sweep{label = "conc.limiter(1, burst)", short = "limiter",
          qual = "conc.limiter", fn = "limiter", args = {n = 2, 1}, pos = 2,
          accept = function(r)
            return is_int(r) and nonneg(r) and a("conc.limiter") or nil
          end}
  end)

  it("lim:allow(n) and lim:reserve(n) take nothing or an integer >= 0",
    function()
      for _, m in ipairs({"allow", "reserve"}) do
        sweep{label = "lim:" .. m .. "(n)", short = m,
              qual = "conc.limiter:" .. m, method = m, fixture = FXL,
              args = {}, pos = 1, accept = function(r)
                if not (is_absent(r) or (is_int(r) and nonneg(r))) then
                  return nil
                end
                return function(res)
                  expect(res.n == 1, "returned %s", show(res))
                end
              end}
      end
    end)

  it("lim:wait(n, 0): n is an integer >= 0, or the ctx itself", function()
    sweep{label = "lim:wait(n, 0)", short = "wait", qual = "conc.limiter:wait",
          method = "wait", fixture = FXL, args = {n = 2, nil, 0}, pos = 1,
          accept = function(r)
            if not (is_absent(r) or r.kind == "conc.ctx" or
                    (is_int(r) and nonneg(r))) then
              return nil
            end
            return function(res)
              expect(res[1] == true or (res[1] == nil and
                     type(res[2]) == "string"), "returned %s", show(res))
            end
          end}
  end)

  it("lim:wait(1, w): w is nothing, seconds or a conc.ctx", function()
    sweep{label = "lim:wait(1, w)", short = "wait", qual = "conc.limiter:wait",
          method = "wait", fixture = FXL, args = {n = 2, 1}, pos = 2,
          accept = function(r)
            if not (is_absent(r) or is_seconds(r) or r.kind == "conc.ctx") then
              return nil
            end
            return function(res)
              local want = r.canceled and "context canceled" or nil
              expect(res[1] == (not want or nil) and res[2] == want,
                     "returned %s", show(res))
            end
          end}
  end)

  it("set_limit takes a rate >= 0, set_burst an integer >= 0", function()
    sweep{label = "lim:set_limit(rate)", short = "set_limit",
          qual = "conc.limiter:set_limit", method = "set_limit",
          fixture = {make = FXL.make, check = function() end},
          args = {}, pos = 1, accept = function(r)
            return is_seconds(r) and nonneg(r) and returns() or nil
          end}
    sweep{label = "lim:set_burst(b)", short = "set_burst",
          qual = "conc.limiter:set_burst", method = "set_burst",
          fixture = {make = FXL.make, check = function() end},
          args = {}, pos = 1, accept = function(r)
            return is_int(r) and nonneg(r) and returns() or nil
          end}
  end)

  it("conc.breaker(opts) takes nothing or a table of known options",
    function()
      sweep{label = "conc.breaker(opts)", short = "breaker",
            qual = "conc.breaker", fn = "breaker", args = {}, pos = 1,
            accept = function(r)
              local ok = is_absent(r) or r.kind == "table" or
                         (r.kind == "mttable" and r.name ~= "a conc.pool")
              return ok and a("conc.breaker") or nil
            end}
      for _, opt in ipairs({"failures", "successes", "probes"}) do
        sweep{label = "conc.breaker{" .. opt .. " = v}", short = "breaker",
              qual = "conc.breaker",
              call = function(_, ...)
                return table.pack(conc.breaker{[opt] = ...})
              end, args = {}, pos = 1, accept = function(r)
                local ok = is_absent(r) or (is_int(r) and tonumber(r.v) >= 1)
                return ok and a("conc.breaker") or nil
              end}
      end
      sweep{label = "conc.breaker{timeout = v}", short = "breaker",
            qual = "conc.breaker",
            call = function(_, ...)
              return table.pack(conc.breaker{timeout = ...})
            end, args = {}, pos = 1, accept = function(r)
              local ok = is_absent(r) or (is_seconds(r) and nonneg(r))
              return ok and a("conc.breaker") or nil
            end}
      sweep{label = "conc.breaker{on_change = v}", short = "breaker",
            qual = "conc.breaker",
            call = function(_, ...)
              return table.pack(conc.breaker{on_change = ...})
            end, args = {}, pos = 1, accept = function(r)
              local ok = is_absent(r) or r.kind == "function"
              return ok and a("conc.breaker") or nil
            end}
    end)

  it("cb:call(fn) takes something callable; a refused call counts nothing",
    function()
      sweep{label = "cb:call(fn)", short = "call", qual = "conc.breaker:call",
            method = "call", fixture = FXB, args = {}, pos = 1,
            -- callables are run by the call (a conc.cancel too: callable)
            skip = function(r)
              return r.kind == "function" or r.kind == "cclosure" or
                     r.kind == "conc.cancel"
            end,
            accept = function() return nil end}
    end)

  it("every method raises on a self of another type", function()
    sweep_self(FXL, "conc.limiter", {
      allow = {n = 0}, wait = {n = 2, 1, 0}, reserve = {n = 0},
      set_limit = {n = 1, 1}, set_burst = {n = 1, 1}, limit = {n = 0},
      burst = {n = 0}, tokens = {n = 0}})
    sweep_self({make = function() return conc.limiter(1, 1):reserve() end,
                check = function(r) assert(r:ok()) end},
               "conc.reservation", {ok = {n = 0}, delay = {n = 0},
                                    cancel = {n = 0}})
    sweep_self(FXB, "conc.breaker", {
      call = {n = 1, function() end}, state = {n = 0}, counts = {n = 0}})
  end)

  it("extra arguments are ignored", function()
    local lim = conc.limiter(0, 5, extra())
    local cb = conc.breaker({}, extra())
    local r = lim:reserve(1, extra())
    rows{
      {"lim:allow(1, ...)", function() return lim:allow(1, extra()) end,
       returns(true)},
      {"lim:wait(1, 0, ...)", function() return lim:wait(1, 0, extra()) end,
       returns(true)},
      -- rate 0: each event spends the burst (Go's), which caps the tokens
      {"lim:tokens(...)", function() return lim:tokens(extra()) end,
       returns(2.0)},
      {"lim:limit(...)", function() return lim:limit(extra()) end,
       returns(0.0)},
      {"lim:burst(...)", function() return lim:burst(extra()) end, returns(2)},
      {"lim:set_burst(5, ...)", function() return lim:set_burst(5, extra()) end,
       returns()},
      {"res:ok(...)", function() return r:ok(extra()) end, returns(true)},
      {"res:delay(...)", function() return r:delay(extra()) end,
       returns(0.0)},
      {"res:cancel(...)", function() return r:cancel(extra()) end, returns()},
      {"cb:state(...)", function() return cb:state(extra()) end,
       returns("closed")},
      {"cb:counts(...)", function() return cb:counts(extra()).requests end,
       returns(0)},
    }
  end)
end)

describe("bad input: conc module functions", function()
  it("conc.set_deadlock_mode takes only \"exit\", \"error\" or \"off\"",
    function()
      sweep{label = "conc.set_deadlock_mode(mode)", short = "set_deadlock_mode",
            qual = "conc.set_deadlock_mode", fn = "set_deadlock_mode",
            args = {}, pos = 1, accept = function() return nil end}
      assert.has_error(function() conc.set_deadlock_mode("EXIT") end)
      assert.has_error(function() conc.set_deadlock_mode("exit ") end)
    end)

  it("conc.set_maxprocs takes nothing (reads) or an integer up to 64",
    function()
      local n = conc.set_maxprocs()
      assert.is_true(math.type(n) == "integer" and n >= 1)
      assert.has_error(function() conc.set_maxprocs("x") end)
      assert.has_error(function() conc.set_maxprocs(1.5) end)
      assert.has_error(function() conc.set_maxprocs(65) end)
      assert.are.equal(n, conc.set_maxprocs(0))   -- below 1: only reads
      assert.are.equal(n, conc.set_maxprocs(-3))
      assert.are.equal(n, conc.set_maxprocs())
    end)

  it("conc.gosched takes no arguments and returns nothing", function()
    assert.are.same({}, {conc.gosched()})
    assert.are.same({}, {conc.gosched(1, "x", {})})
  end)

  it("set_deadlock_mode ignores extra arguments (subprocess)", function()
    local out, rc = subprocess([[
      conc.set_deadlock_mode("error", "exit", 1)
      print("RESULT", pcall(function() conc.chan():recv() end))
    ]])
    assert.are.equal(0, rc, out)
    assert.is_truthy(out:find("RESULT\tfalse\t", 1, true), out)
    assert.is_truthy(out:find("conc.chan:recv: all workers are asleep - " ..
                              "deadlock!", 1, true), out)
  end)

  it("constructors and diagnostics ignore extra arguments", function()
    rows{
      {"conc.waitgroup(...)", function() return conc.waitgroup(extra()):count()
       end, returns(0)},
      {"conc.mutex(...)", function() return conc.mutex(extra()):try_lock() end,
       returns(true)},
      {"conc.rwmutex(...)", function()
         return conc.rwmutex(extra()):try_rlock()
       end, returns(true)},
      {"conc.once(...)", function()
         return conc.once(extra()):call(function() return 1 end)
       end, returns(1)},
      {"conc.map(...)", function() return #conc.map(extra()) end, returns(0)},
      {"conc.workers(...)", function() return type(conc.workers(extra())) end,
       returns("table")},
      {"conc.stats(...)", function()
         return type(conc.stats(extra()).objects)
       end, returns("table")},
    }
  end)

  it("every function in the conc table is covered by these specs", function()
    local covered = {
      "after", "atomic", "background", "breaker", "chan", "cond", "defer",
      "errgroup", "go", "id", "limiter", "map", "mutex", "semaphore",
      "now", "once", "pool", "rwmutex", "select", "set_deadlock_mode",
      "merge", "pubsub", "stage", "workpool", "_flow_worker",
      "set_maxprocs", "gosched",
      "sleep", "stats", "ticker", "timer", "todo", "waitgroup", "with_cancel",
      "with_cancel_cause", "with_deadline", "with_timeout", "with_value",
      "workers"}
    local set = {}
    for _, name in ipairs(covered) do set[name] = true end
    for name, v in pairs(conc) do
      if type(v) == "function" then
        assert(set[name], "conc." .. name .. " has no bad-input spec")
      end
    end
  end)
end)

-- ==== pub/sub, merge, stage, workpool (issue 12) =============================

FX.pubsub = {
  make = function() return conc.pubsub() end,
  check = function(ps)
    expect(#ps == 0, "%d subscribers, not 0", #ps)
    local c = ps:subscribe("x", "t", 1)
    expect(ps:publish("t", 1) == 1, "publish did not reach x")
    expect(c:recv().payload == 1, "x did not receive")
    expect(ps:unsubscribe("x"), "unsubscribe")
  end,
}

FX.workpool = {
  make = function() return conc.workpool(1, function(j) return j end) end,
  check = function(p)
    expect(p:submit(7, 5) == true, "submit failed")
    local r = p:results():recv(5)
    expect(r and r.ok and r.value == 7, "result %s", show_value(r))
    p:close()
    expect(p:workers() == 0, "workers left after close")
  end,
}

describe("bad input: pub/sub, merge, stage, workpool", function()
  it("every method raises on a self of another type", function()
    sweep_self(FX.pubsub, "conc.pubsub", {
      subscribe = {n = 2, "id", "t"}, unsubscribe = {n = 1, "id"},
      publish = {n = 2, "t", 1}, dropped = {n = 1, "id"}, len = {n = 0}})
    sweep_self(FX.workpool, "conc.workpool", {
      submit = {n = 1, 1}, try_submit = {n = 1, 1}, results = {n = 0},
      wait = {n = 1, 0}, len = {n = 0}, workers = {n = 0}})
  end)

  it("constructors refuse what they cannot use", function()
    local ch = conc.chan()
    local cases = {
      {"merge: no list", function() conc.merge(ch) end},
      {"merge: an element", function() conc.merge({ch, 1}) end},
      {"merge: ctx", function() conc.merge({ch}, 1) end},
      {"stage: input", function() conc.stage({}, print) end},
      {"stage: fn", function() conc.stage(ch, {}) end},
      {"stage: options", function() conc.stage(ch, print, 3) end},
      {"stage: buffer", function() conc.stage(ch, print, {buffer = -1}) end},
      {"workpool: n", function() conc.workpool(1.5, print) end},
      {"workpool: fn", function() conc.workpool(1) end},
      {"workpool: ctx", function() conc.workpool(1, print, {ctx = ch}) end},
      {"pubsub: topics", function() conc.pubsub():subscribe("a", 1) end},
      {"pubsub: capacity", function()
         conc.pubsub():subscribe("a", "t", 2^31) end},
      {"pubsub: id", function() conc.pubsub():subscribe({}, "t") end},
    }
    for _, c in ipairs(cases) do
      expect(not pcall(c[2]), "%s did not raise", c[1])
    end
  end)
end)

-- ==== metamethods ===========================================================

describe("bad input: metamethods called directly", function()
  local function metatables()
    local ctx, cancel = conc.with_cancel(conc.background())
    return {
      ["conc.chan"] = getmetatable(conc.chan()),
      ["conc.map"] = getmetatable(conc.map()),
      ["conc.mutex"] = getmetatable(conc.mutex()),
      ["conc.timer"] = getmetatable(conc.timer(3600)),
      ["conc.cond"] = getmetatable(conc.cond(conc.mutex())),
      ["conc.ctx"] = getmetatable(ctx),
      ["conc.cancel"] = getmetatable(cancel),
    }
  end

  it("__len, __close, __call and __index raise on a foreign self", function()
    local failures = {}
    for tname, mt in pairs(metatables()) do
      for _, mm in ipairs({"__len", "__close", "__call", "__index"}) do
        if type(mt[mm]) == "function" then
          for _, r in ipairs(values()) do
            local accepted = r.kind == tname or
              (tname == "conc.timer" and r.kind == "conc.ticker")
            if not accepted and r.kind ~= "none" then
              local ok, err = pcall(mt[mm], r.v, "C")
              if ok or not (tostring(err):find("expected", 1, true) or
                            tostring(err):find("already released", 1, true))
              then
                failures[#failures + 1] = ("%s.%s(%s): %s"):format(
                  tname, mm, r.name, ok and "did not raise" or tostring(err))
              end
            end
          end
        end
      end
    end
    assert(#failures == 0, table.concat(failures, "\n"))
  end)

  it("__eq and __tostring accept anything", function()
    for tname, mt in pairs(metatables()) do
      for _, r in ipairs(values()) do
        if r.kind ~= "none" then
          local ok, s = pcall(mt.__tostring, r.v)
          assert(ok and type(s) == "string",
                 tname .. ".__tostring(" .. r.name .. "): " .. tostring(s))
          local ok2, eq = pcall(mt.__eq, r.v, r.v)
          assert(ok2 and eq == is_conc(r),
                 tname .. ".__eq(" .. r.name .. "): " .. tostring(eq))
        end
      end
    end
  end)

  -- Boxes finalized by hand below are dropped and collected before the
  -- test ends, and their objects are kept alive by a holder channel until
  -- then: a live dead box would be handed to any new object allocated at
  -- its address, in this spec or the next.
  local function collect_dead_boxes()
    collectgarbage()
    collectgarbage()
  end

  it("__gc of one type does not release an object of another type",
    function()
      local failures = {}
      local gc = getmetatable(conc.chan()).__gc
      local vals = values()
      local holder = conc.chan(#vals)
      for _, r in ipairs(vals) do
        if is_conc(r) then holder:send(r.v) end
      end
      for _, r in ipairs(vals) do
        if is_conc(r) and r.kind ~= "conc.chan" then
          local ok, err = pcall(gc, r.v)
          local now = tostring(r.v)
          if now:sub(1, #r.kind + 1) ~= r.kind .. ":" then
            failures[#failures + 1] = ("getmetatable(conc.chan()).__gc(%s) " ..
              "%s, and released it: it now prints as %q"):format(r.name,
              ok and "returned" or "raised " .. tostring(err), now)
          end
        end
      end
      vals, holder = nil, nil  -- luacheck: ignore 311 (dropped for the GC)
      collect_dead_boxes()
      assert(#failures == 0, table.concat(failures, "\n"))
    end)

  it("__gc ignores values that are not userdata", function()
    local gc = getmetatable(conc.chan()).__gc
    for _, v in ipairs({1, "x", {}, true, print}) do
      assert.has_no_error(function() gc(v) end)
    end
    assert.has_no_error(function() gc() end)
  end)

  it("a finalized box raises 'object already released' and is not sent",
    function()
      -- holder keeps ch's object alive until the collection below
      local ch, holder = released_chan()  -- luacheck: ignore 231
      getmetatable(ch).__gc(ch)  -- twice: nothing more to release
      local ok, err = pcall(function() return ch:len() end)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("conc.chan:len: bad self " ..
                                          "(object already released)", 1,
                                          true), err)
      local other = conc.chan(1)
      assert.has_error(function() other:send(ch) end,
        "conc.chan:send: value: cannot transfer a userdata")
      assert.are.equal(0, #other)
      ch, holder = nil, nil  -- luacheck: ignore 311 (dropped for the GC)
      collect_dead_boxes()
    end)

  it("a box finalized by hand is never handed to another object " ..
     "(subprocess)", function()
      local out, rc = subprocess([[
        -- 1. a new channel allocated where the finalized one was
        local reused = 0
        for _ = 1, 200 do
          local a = conc.chan()
          getmetatable(a).__gc(a)
          local b = conc.chan()
          if rawequal(a, b) or not pcall(b.len, b) then
            reused = reused + 1
          end
        end
        print("NEW OBJECT GOT A DEAD BOX", reused, "of 200")
        -- 2. the same channel, still alive, received back
        local ch, holder = conc.chan(), conc.chan(1)
        holder:send(ch)
        getmetatable(ch).__gc(ch)
        local back = holder:recv()
        print("RECEIVED BACK", pcall(back.len, back))
      ]])
      assert.are.equal(0, rc, out)
      assert.is_truthy(out:find("NEW OBJECT GOT A DEAD BOX\t0\t", 1, true),
        out)
    end)

  it("__gc of a conc class on a file handle does not corrupt it " ..
     "(subprocess)", function()
      local out, rc = subprocess([[
        local f = io.tmpfile()
        print("GC", pcall(getmetatable(conc.chan()).__gc, f))
        io.stdout:flush()
        print("WRITE", pcall(f.write, f, "still writable"))
        io.stdout:flush()
        f:close()
        print("END")
      ]])
      assert.are.equal(0, rc, "the process died:\n" .. out)
      assert.is_truthy(out:find("WRITE\ttrue", 1, true), out)
      assert.is_truthy(out:find("END", 1, true), out)
    end)
end)

-- ==== sizes =================================================================

describe("bad input: sizes", function()
  it("the largest capacity gives a channel or 'not enough memory' " ..
     "(subprocess)", function()
      local out, rc = subprocess([[
        local ok, res = pcall(conc.chan, 2^31 - 1)
        print("RESULT", ok, ok and res:cap() or res)
      ]])
      assert.are.equal(0, rc, out)
      assert.is_truthy(out:find("RESULT\ttrue\t2147483647", 1, true) or
        out:find("RESULT\tfalse\tconc.chan: not enough memory", 1, true), out)
    end)

  it("capacities beyond 2^31-1 are refused before allocating", function()
    for _, cap in ipairs({2^31, 1 << 40, math.maxinteger, -1,
                          math.mininteger}) do
      assert.has_error(function() conc.chan(cap) end,
        "conc.chan: bad argument #1 (capacity must be an integer from 0 to " ..
        "2^31-1)")
    end
  end)
end)
