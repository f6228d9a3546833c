-- Errors that help (issue 14, point 7): an argument error names the
-- function and the object type; a worker's traceback ends with where the
-- worker was started (Go's "created by" line); a nil global in a worker
-- gets a hint that globals do not cross into workers.
local conc = require("conc")

-- The message f(...) raises (it must raise).
local function error_of(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

-- The line this is called from.
local function here()
  return debug.getinfo(2, "l").currentline
end

local SRC = debug.getinfo(1, "S").short_src

describe("argument errors", function()
  -- {what the call is, the call, the prefix its error must start with
  -- (after the position)}
  local cases = {
    {"conc.semaphore(string)", function() conc.semaphore("x") end,
     "conc.semaphore: bad argument #1 (number expected, got string)"},
    {"sem:acquire(string)", function() conc.semaphore(1):acquire("x") end,
     "conc.semaphore:acquire: bad argument #1 (number expected, got string)"},
    {"sem.acquire(non-semaphore)",
     function() local s = conc.semaphore(1); s.acquire(conc.mutex()) end,
     "conc.semaphore:acquire: bad argument #1 (conc.semaphore expected, " ..
     "got conc.mutex)"},
    {"conc.atomic(string)", function() conc.atomic("x") end,
     "conc.atomic: bad argument #1 (number expected, got string)"},
    {"atomic:add(1.5)", function() conc.atomic(0):add(1.5) end,
     "conc.atomic:add: bad argument #1 (number has no integer " ..
     "representation)"},
    {"conc.breaker(number)", function() conc.breaker(1) end,
     "conc.breaker: bad argument #1 (table expected, got number)"},
    {"breaker:call(number)", function() conc.breaker({}):call(1) end,
     "conc.breaker:call: bad argument #1 (function expected, got number)"},
    {"errgroup:go(number)", function() conc.errgroup():go(1) end,
     "conc.errgroup:go: bad argument #1 (function expected, got number)"},
    {"errgroup:set_limit(string)",
     function() conc.errgroup():set_limit("x") end,
     "conc.errgroup:set_limit: bad argument #1 (number expected, got " ..
     "string)"},
    {"pubsub:subscribe()", function() conc.pubsub():subscribe() end,
     "conc.pubsub:subscribe: bad argument #1"},
    {"conc.merge(number)", function() conc.merge(1) end,
     "conc.merge: bad argument #1 (table expected, got number)"},
    {"conc.with_cancel(number)", function() conc.with_cancel(1) end,
     "conc.with_cancel: bad argument #1 (conc.ctx expected, got number)"},
    {"conc.with_timeout(ctx, string)",
     function() conc.with_timeout(conc.background(), "x") end,
     "conc.with_timeout: bad argument #2 (number expected, got string)"},
    {"conc.cond(number)", function() conc.cond(1) end,
     "conc.cond: bad argument #1 (conc.mutex expected, got number)"},
    {"conc.signal.notify(number)", function() conc.signal.notify(1) end,
     "conc.signal.notify: bad argument #1 (conc.chan expected, got number)"},
    -- A method's self, checked for every conc type the same way.
    {"ch.send(table)", function() local c = conc.chan(1); c.send({}, 1) end,
     "conc.chan:send: bad argument #1 (conc.chan expected, got table)"},
    {"ch.send(mutex)",
     function() local c = conc.chan(1); c.send(conc.mutex(), 1) end,
     "conc.chan:send: bad argument #1 (conc.chan expected, got conc.mutex)"},
    {"h.join(number)",
     function() local h = conc.go(function() end); h:join(); h.join(1) end,
     "conc.worker:join: bad argument #1 (conc.worker expected, got number)"},
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " names the function and the type", function()
      local err = error_of(c[2])
      local msg = err:gsub("^[^:]*:%d+: ", "")
      assert.are.equal(c[3], msg:sub(1, #c[3]))
    end)
  end

  it("the position is the caller's line", function()
    local line = here(); local err = error_of(function() conc.atomic("x") end)
    local want = SRC .. ":" .. line .. ": conc.atomic: bad argument #1 "
    assert.are.equal(want, err:sub(1, #want))
  end)

  it("a finalized object is a bad self of its own type", function()
    local ch = conc.chan(1)
    getmetatable(ch).__gc(ch)
    assert.matches("conc.chan:len: bad self (object already released)",
      error_of(function() return ch:len() end), 1, true)
  end)

  it("a function called through pcall is still named", function()
    local ok, err = pcall(conc.semaphore, "x")
    assert.is_false(ok)
    assert.matches("conc.semaphore: bad argument #1", err, 1, true)
  end)

  it("a method called by another name is named by its own", function()
    local ch = conc.chan(1)
    local wait_for = ch.recv
    local t = {put = ch.send}
    assert.matches("conc.chan:recv: bad argument #2 (number of seconds",
      error_of(function() wait_for(ch, "x") end), 1, true)
    assert.matches("conc.chan:send: bad argument #1 (conc.chan expected",
      error_of(function() t.put({}, 1) end), 1, true)
    local mu = conc.mutex()
    local release = mu.unlock
    assert.matches("conc.mutex:unlock: sync: unlock of unlocked mutex",
      error_of(function() release(mu) end), 1, true)
  end)
end)

describe("a worker's traceback", function()
  it("shows the worker's stack and where conc.go was called", function()
    local function inner() error("boom") end
    local line = here(); local h = conc.go(function() inner() end)
    local ok, err = h:join()
    assert.is_false(ok)
    assert.matches("boom\nstack traceback:\n", err, 1, true)
    assert.matches("in upvalue 'inner'", err, 1, true)
    local last = err:match("[^\n]*$")
    assert.are.equal(("created by conc.go in the main script at %s:%d")
      :format(SRC, line), last)
  end)

  it("names the spawning worker for a worker started by a worker",
    function()
      local h = conc.go(function(src)
        local line = debug.getinfo(1, "l").currentline + 1
        local inner = conc.go(function() error("deep") end)
        local _, err = inner:join()
        return err, line, conc.id(), src
      end, SRC)
      local ok, err, line, id = h:join()
      assert.is_true(ok)
      assert.are.equal(("created by conc.go in worker %d at %s:%d")
        :format(id, SRC, line), err:match("[^\n]*$"))
    end)

  it("gives the Lua line when conc.go is called through pcall", function()
    local line = here(); local _, h = pcall(conc.go, function() error("x") end)
    local _, err = h:join()
    assert.are.equal(("created by conc.go in the main script at %s:%d")
      :format(SRC, line), err:match("[^\n]*$"))
  end)

  it("errgroup:go records its call site", function()
    local g = conc.errgroup()
    local line = here(); g:go(function() error("in group") end)
    local _, err = g:wait()
    assert.are.equal(("created by conc.go in the main script at %s:%d")
      :format(SRC, line), err:match("[^\n]*$"))
  end)

  it("an error value that is not a string travels as it is", function()
    local _, err = conc.go(function() error({code = 7}) end):join()
    assert.are.same({code = 7}, err)
  end)
end)

describe("a nil global in a worker", function()
  local HINT = "; globals of the main script are not visible in workers, " ..
    "pass it as an argument or an upvalue"

  it("calling it gets the hint", function()
    rawset(_G, "process_for_errors_spec", function() return 1 end)
    local _, err = conc.go(function()
      return process_for_errors_spec() -- luacheck: ignore
    end):join()
    rawset(_G, "process_for_errors_spec", nil)
    assert.matches("attempt to call a nil value (global " ..
      "'process_for_errors_spec')" .. HINT .. "\nstack traceback:", err, 1,
      true)
  end)

  it("indexing it gets the hint", function()
    local _, err = conc.go(function()
      return config_for_errors_spec.name -- luacheck: ignore
    end):join()
    assert.matches("attempt to index a nil value (global " ..
      "'config_for_errors_spec')" .. HINT, err, 1, true)
  end)

  it("other errors do not", function()
    local function err_of(f) return select(2, conc.go(f):join()) end
    local t = {}
    local errs = {
      err_of(function() return t.missing.x end),          -- a field
      err_of(function() return nil_for_errors_spec + 1 end), -- luacheck: ignore
      err_of(function() local f; f() end), -- luacheck: ignore (a local)
      err_of(function() error("global 'x' is nil") end),
    }
    for _, e in ipairs(errs) do
      assert.is_nil(e:find("globals of the main script", 1, true), e)
    end
  end)

  it("the main script's own errors do not", function()
    local err = error_of(function()
      return undefined_for_errors_spec() -- luacheck: ignore
    end)
    local want = "attempt to call a nil value (global " ..
      "'undefined_for_errors_spec')"
    assert.are.equal(want, err:sub(-#want))
  end)
end)
