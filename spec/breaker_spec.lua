local conc = require("conc")
local support = require("support")

local function fail() return nil, "down" end
local function succeed() return "up" end

-- Waits until the open breaker's timeout has passed (its state() turns
-- it half-open).
local function await_half_open(cb)
  while cb:state() == "open" do conc.sleep(0.005) end
  assert.are.equal("half-open", cb:state())
end

describe("conc.breaker", function()
  it("starts closed with the documented defaults", function()
    local cb = conc.breaker()
    assert.are.equal("closed", cb:state())
    assert.are.same({requests = 0, successes = 0, failures = 0,
      consecutive_successes = 0, consecutive_failures = 0}, cb:counts())
    for _ = 1, 4 do cb:call(fail) end
    assert.are.equal("closed", cb:state()) -- failures = 5 by default
    cb:call(fail)
    assert.are.equal("open", cb:state()) -- and a 30 s timeout
  end)

  it("passes arguments and every result through", function()
    local cb = conc.breaker{failures = 1}
    local r = table.pack(cb:call(function(...) return ... end,
                                 1, nil, "x", nil))
    assert.are.equal(4, r.n)
    assert.are.same({1, nil, "x", nil}, {r[1], r[2], r[3], r[4]})
    assert.are.equal("closed", cb:state())
  end)

  it("opens after exactly `failures` consecutive failures", function()
    local cb = conc.breaker{failures = 3, timeout = 60}
    assert.are.same({nil, "down"}, {cb:call(fail)})
    cb:call(fail)
    assert.are.equal("up", cb:call(succeed)) -- resets the run
    cb:call(fail)
    cb:call(fail)
    local c = cb:counts()
    assert.are.equal(5, c.requests)
    assert.are.equal(4, c.failures)
    assert.are.equal(1, c.successes)
    assert.are.equal(2, c.consecutive_failures)
    assert.are.equal("closed", cb:state())
    cb:call(fail)
    assert.are.equal("open", cb:state())
    assert.are.equal(0, cb:counts().requests) -- a new state, new counts
    local ran = false
    local ok, err = cb:call(function() ran = true end)
    assert.is_nil(ok)
    assert.are.equal("circuit breaker is open", err)
    assert.is_false(ran)
  end)

  it("counts a raise as a failure and raises it again, as it was", function()
    local cb = conc.breaker{failures = 2}
    local e = {code = 42}
    local ok, err = pcall(cb.call, cb, function() error(e) end)
    assert.is_false(ok)
    assert.are.equal(e, err) -- the same value
    assert.are.equal(1, cb:counts().failures)
    pcall(cb.call, cb, function() error("again") end)
    assert.are.equal("open", cb:state())
  end)

  it("only nil, err is a failure: false, err and nil, false are values",
    function()
    local cb = conc.breaker{failures = 1}
    assert.are.same({false, "x"}, {cb:call(function() return false, "x" end)})
    assert.are.same({nil, false}, {cb:call(function() return nil, false end)})
    cb:call(function() return nil end)
    cb:call(function() end)
    assert.are.equal("closed", cb:state())
    assert.are.equal(4, cb:counts().successes)
  end)

  it("half-open: successes close it, a failure reopens it", function()
    local cb = conc.breaker{failures = 1, timeout = 0.03, successes = 2}
    cb:call(fail)
    assert.are.equal("open", cb:state())
    await_half_open(cb)
    assert.are.equal("up", cb:call(succeed))
    assert.are.equal("half-open", cb:state())
    assert.are.equal("down", select(2, cb:call(fail)))
    assert.are.equal("open", cb:state()) -- any failure reopens
    local t0 = conc.now()
    await_half_open(cb) -- a full timeout again, from this opening
    assert.is_true(conc.now() - t0 >= 0.02)
    cb:call(succeed)
    cb:call(succeed)
    assert.are.equal("closed", cb:state())
  end)

  it("on_change(from, to) runs in the worker that made the change", function()
    local changes = conc.chan(16)
    local cb = conc.breaker{failures = 1, timeout = 0.02,
      on_change = function(from, to)
        changes:send({from = from, to = to, id = conc.id()})
      end}
    local h = conc.go(function(b)
      b:call(function() return nil, "x" end)
    end, cb)
    support.join_ok(h)
    local c = changes:recv()
    assert.are.same({from = "closed", to = "open", id = h:id()}, c)
    await_half_open(cb)
    assert.are.same({from = "open", to = "half-open", id = 0}, changes:recv())
    cb:call(succeed)
    assert.are.same({from = "half-open", to = "closed", id = 0}, changes:recv())
    assert.are.equal(0, #changes)
  end)

  it("on_change is decoded once per task: its upvalues persist there",
    function()
    local seen = conc.chan(16)
    local n = 0
    local cb = conc.breaker{failures = 1, timeout = 0, on_change = function()
      n = n + 1
      seen:send(n)
    end}
    cb:call(fail)      -- closed -> open
    cb:call(succeed)   -- open -> half-open, then -> closed
    local a, b, c = seen:recv(), seen:recv(), seen:recv()
    assert.are.same({1, 2, 3}, {a, b, c})
    assert.are.equal(0, n) -- the breaker holds a copy, as conc.go would
  end)

  it("each task decodes its own on_change: no copy outlives its task",
    function()
    -- One processor: the tasks run one after another in pooled states,
    -- where a copy kept from an earlier task would show its globals and
    -- its upvalues' counts.
    local old = conc.set_maxprocs(1)
    local seen = conc.chan(100)
    local n = 0
    local cb = conc.breaker{failures = 1, timeout = 0, on_change = function()
      n = n + 1
      seen:send({conc.id(), WHO, n}) -- luacheck: globals WHO
    end}
    for _ = 1, 20 do
      support.join_ok(conc.go(function(b)
        WHO = conc.id() -- luacheck: globals WHO
        b:call(function() return nil, "x" end) -- closed -> open
        b:call(function() return 1 end)         -- -> half-open -> closed
      end, cb))
    end
    conc.set_maxprocs(old)
    local got = {}
    while #seen > 0 do
      local c = seen:recv()
      got[#got + 1] = c
      assert.are.equal(c[1], c[2]) -- the task's own globals
    end
    assert.are.equal(60, #got)
    for i, c in ipairs(got) do
      assert.are.equal((i - 1) % 3 + 1, c[3]) -- a fresh copy per task
    end
  end)

  it("an error in on_change is raised from the call that made the change",
    function()
    local cb = conc.breaker{failures = 1, on_change = function(_, to)
      error("hook saw " .. to, 0)
    end}
    local ok, err = pcall(cb.call, cb, fail)
    assert.is_false(ok)
    assert.are.equal("hook saw open", err)
    assert.are.equal("open", cb:state())
  end)

  it("N workers failing at once open it once; then every call is refused",
    function()
    local changes = conc.chan(16)
    local cb = conc.breaker{failures = 5, timeout = 60,
      on_change = function(from, to) changes:send(from .. ">" .. to) end}
    local inside, ended = conc.waitgroup(), conc.waitgroup()
    inside:add(8)
    ended:add(8)
    local hs = {}
    for i = 1, 8 do
      hs[i] = conc.go(function(b, wg, wg_ended)
        local ran = 0
        -- every worker is admitted while closed: all 8 calls run
        local _, err = b:call(function()
          ran = ran + 1
          wg:done()
          wg:wait()
          return nil, "down"
        end)
        assert(err == "down", err)
        wg_ended:done()
        wg_ended:wait() -- every first call has ended
        local ok, err2 = b:call(function() ran = ran + 1 end)
        return ran, ok, err2
      end, cb, inside, ended)
    end
    for _, h in ipairs(hs) do
      local ran, ok, err = support.join_ok(h)
      assert.are.equal(1, ran)
      assert.is_nil(ok)
      assert.are.equal("circuit breaker is open", err)
    end
    -- the first 5 failures opened it; the 3 that ended after it opened
    -- belong to the closed state and count for nothing
    assert.are.equal("closed>open", changes:recv())
    assert.are.equal(0, #changes)
    assert.are.same({requests = 0, successes = 0, failures = 0,
      consecutive_successes = 0, consecutive_failures = 0}, cb:counts())
  end)

  it("half-open admits exactly `probes` calls at once", function()
    local cb = conc.breaker{failures = 1, timeout = 0.02, probes = 3,
                            successes = 3}
    cb:call(fail)
    await_half_open(cb)
    local entered, results = conc.chan(8), conc.chan(8)
    local gate = conc.chan()
    local hs = {}
    for i = 1, 8 do
      hs[i] = conc.go(function(b)
        local ok, err = b:call(function()
          entered:send(true)
          gate:recv() -- hold the probe until main lets go
          return "probed"
        end)
        results:send(ok or err)
      end, cb)
    end
    local refused = 0
    for _ = 1, 5 do
      assert.are.equal("too many probes", results:recv())
      refused = refused + 1
    end
    for _ = 1, 3 do assert.is_true(entered:recv()) end
    assert.are.equal(3, cb:counts().requests)
    gate:close()
    for _ = 1, 3 do assert.are.equal("probed", results:recv()) end
    for _, h in ipairs(hs) do support.join_ok(h) end
    assert.are.equal(5, refused)
    assert.are.equal("closed", cb:state()) -- 3 successes in a row
  end)

  it("a probe whose coroutine is closed or dropped inside fn gives its "
    .. "place back", function()
    for _, ending in ipairs({"close", "drop"}) do
      local cb = conc.breaker{failures = 1, timeout = 0.02, probes = 1}
      cb:call(fail)
      await_half_open(cb)
      local probe = support.suspended(function()
        return cb:call(function() coroutine.yield("probing") end)
      end, "probing")
      assert.are.same({nil, "too many probes"}, {cb:call(fail)})
      support.abandon(probe, ending)
      assert.are.equal(0, cb:counts().requests)
      assert.are.same({"fine"}, {cb:call(function() return "fine" end)})
      assert.are.equal("closed", cb:state())
    end
    -- collected, then brought back by a finalizer and resumed: the call
    -- returns, but its place went back once only (probes stay 1)
    local cb = conc.breaker{failures = 1, timeout = 0.02, probes = 1,
                            successes = 100}
    cb:call(fail)
    await_half_open(cb)
    local revived = support.revived(function()
      return cb:call(function() coroutine.yield("in") return "late" end)
    end)
    assert.are.same({true, "late"}, {coroutine.resume(revived)})
    assert.are.equal(0, cb:counts().requests)
    local held = coroutine.create(function()
      return cb:call(function() coroutine.yield("probing") end)
    end)
    assert.are.same({true, "probing"}, {coroutine.resume(held)})
    assert.are.same({nil, "too many probes"}, {cb:call(fail)})
    assert.is_true(coroutine.close(held))
  end)

  it("is shared by reference: a worker sees the state main made", function()
    local cb = conc.breaker{failures = 1, timeout = 60}
    cb:call(fail)
    local m = conc.map()
    m:store("cb", cb)
    local state, ok, err = support.join_ok(conc.go(function(map)
      local b = map:load("cb")
      return b:state(), b:call(function() return 1 end)
    end, m))
    assert.are.equal("open", state)
    assert.is_nil(ok)
    assert.are.equal("circuit breaker is open", err)
  end)

  it("refuses bad options and arguments", function()
    local cases = {
      {{failures = 0}, "failures must be an integer >= 1"},
      {{failures = 1.5}, "failures must be an integer >= 1"},
      {{successes = -1}, "successes must be an integer >= 1"},
      {{probes = "x"}, "probes must be an integer >= 1"},
      {{timeout = -1}, "timeout must be a number of seconds >= 0"},
      {{timeout = 0 / 0}, "timeout must be a number of seconds >= 0"},
      {{on_change = 1}, "on_change must be a function"},
      {{failure = 3}, "unknown option 'failure'"},
      {"x", "table expected"},
    }
    for i, c in ipairs(cases) do
      local ok, err = pcall(conc.breaker, c[1])
      assert.is_false(ok, "case " .. i)
      assert.matches(c[2], err, 1, true)
    end
    local io_file = io.stdout
    local ok, err = pcall(conc.breaker,
                          {on_change = function() return io_file end})
    assert.is_false(ok)
    assert.matches("cannot transfer", err, 1, true)
    local cb = conc.breaker()
    ok, err = pcall(cb.call, cb, 42)
    assert.is_false(ok)
    assert.matches("function expected", err, 1, true)
    local callable = setmetatable({}, {__call = function() return "x" end})
    assert.are.equal("x", cb:call(callable))
    ok, err = pcall(cb.state, conc.mutex())
    assert.is_false(ok)
    assert.matches("conc.breaker expected", err, 1, true)
  end)
end)
