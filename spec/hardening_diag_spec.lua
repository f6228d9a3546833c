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

describe("each blocking call names itself", function()
  -- Waits until worker id is asleep; returns its conc.workers() entry.
  local function asleep(id)
    while true do
      for _, w in ipairs(conc.workers()) do
        if w.id == id and (w.state == "blocked" or w.state == "sleeping") then
          return w
        end
      end
      conc.sleep(0.001)  -- polling a condition, not ordering by time
    end
  end

  it("in conc.workers()", function()
    local gate = conc.chan()
    local mu, rw, rw2 = conc.mutex(), conc.rwmutex(), conc.rwmutex()
    local cmu = conc.mutex()
    local cond = conc.cond(cmu)
    local wg, once = conc.waitgroup(), conc.once()
    local ctx, cancel = conc.with_cancel(conc.background())
    local full = conc.chan()
    wg:add(1)
    mu:lock()
    rw:rlock()
    rw2:lock()
    local holder = conc.go(function(g) g:recv() end, gate)
    local runner = conc.go(function(o, g)
      return o:call(function() return g:recv() end)
    end, once, gate)
    local seen = asleep(runner:id())
    assert.equals("chan receive", seen.waiting_in)
    local cases = {
      {"worker join", function(h) h:join() end, holder},
      {"worker wait", function(h) h:wait() end, holder},
      {"waitgroup wait", function(w) w:wait() end, wg},
      {"once call", function(o) o:call(function() end) end, once},
      {"mutex lock", function(m) m:lock(); m:unlock() end, mu},
      {"rwmutex lock", function(m) m:lock(); m:unlock() end, rw},
      {"rwmutex rlock", function(m) m:rlock(); m:runlock() end, rw2},
      {"cond wait", function(c)
        c.L:lock(); c:wait(); c.L:unlock()
      end, cond},
      {"chan send", function(c) c:send(1) end, full},
      {"chan receive", function(g) g:recv() end, gate},
      {"chan range", function(g) for _ in g:range() do end end, gate},
      {"select", function(g) conc.select{{"recv", g}} end, gate},
      {"sleep", function(c) conc.sleep(3600, c) end, ctx},
    }
    local hs = {}
    for k, c in ipairs(cases) do
      hs[k] = conc.go(c[2], c[3])
      local w = asleep(hs[k]:id())
      assert.equals(c[1], w.waiting_in)
    end
    assert.equals("sleeping", asleep(hs[#cases]:id()).state)
    -- let everyone go
    cancel()
    wg:done()
    mu:unlock()
    rw:runlock()
    rw2:unlock()
    full:recv()
    cmu:lock()
    cond:broadcast()
    cmu:unlock()
    gate:close()
    for k = 1, #cases do support.join_ok(hs[k]) end
    support.join_ok(holder)
    support.join_ok(runner)
  end)

  it("in conc.workers(), for a select with no channel", function()
    -- (in a process of its own: conc.select{} never returns)
    local out, rc = support.run_script([[
      local conc = require("conc")
      local h = conc.go(function() conc.select{} end)
      while true do
        for _, w in ipairs(conc.workers()) do
          if w.id == h:id() and w.state == "blocked" then
            print(w.waiting_in)
            os.exit(0)
          end
        end
        conc.sleep(0.001)  -- polling a condition, not ordering by time
      end
    ]], 20)
    assert.are.equal(0, rc, out)
    assert.are.equal("select with no channel\n", out)
  end)

  it("in the deadlock report", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local wg, once, never = conc.waitgroup(), conc.once(), conc.chan()
      local started = conc.chan(1)
      wg:add(1)
      local h = conc.go(function(o, c, s)
        o:call(function() s:send(true); c:recv() end)
      end, once, never, started)
      started:recv()  -- worker 1 runs the once: worker 2 must wait
      local h2 = conc.go(function(o) o:call(function() end) end, once)
      local h3 = conc.go(function(x) x:join() end, h2)
      local h4 = conc.go(function(c) for _ in c:range() do end end, never)
      wg:wait()
    ]])
    assert.equals(2, rc)
    assert.matches("main: waits in waitgroup wait", out, 1, true)
    assert.matches("worker 1: waits in chan receive", out, 1, true)
    assert.matches("worker 2: waits in once call", out, 1, true)
    assert.matches("worker 3: waits in worker join", out, 1, true)
    assert.matches("worker 4: waits in chan range", out, 1, true)
  end)
end)

describe("huge timeouts are clamped, never forever", function()
  -- Run by a worker: waits until the main script waits, notes its
  -- state, then lets it go (how depends on mode); returns the state.
  local function watch(mode, c, wg)
    local state
    repeat
      for _, w in ipairs(conc.workers()) do
        if w.id == 0 and w.waiting_in and w.state ~= "running" then
          state = w.state
        end
      end
      if not state then conc.sleep(0.001) end  -- polls a condition
    until state
    if mode == "recv" then c:send(1)
    elseif mode == "send" then c:recv()
    elseif mode == "wg" then wg:done()
    end
    return state
  end

  for _, t in ipairs({1e10, 9.3e9, math.huge}) do
    it(("a wait of %g s has a deadline, not none"):format(t), function()
      local waits = {
        recv = function(c) return c:recv(t) end,
        send = function(c) return c:send(1, t) end,
        select = function(c)
          return conc.select{{"recv", c}, timeout = t}
        end,
        wg = function(_, wg) return wg:wait(t) end,
        worker = function(c)
          local h = conc.go(function(ch) ch:recv() end, c)
          return h:wait(t)
        end,
      }
      for name, wait in pairs(waits) do
        local c, wg = conc.chan(), conc.waitgroup()
        wg:add(1)
        local mode = (name == "select" or name == "worker") and "recv"
                     or name
        local h = conc.go(watch, mode, c, wg)
        assert.truthy(wait(c, wg), name)
        assert.equals("waiting", support.join_ok(h), name)
      end
    end)
  end

  it("is no deadlock even when everyone else is blocked", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local never = conc.chan()
      conc.go(function(c) c:recv() end, never)
      print(conc.chan():recv(1e10))
    ]], 1)
    assert.is_nil(out:find("deadlock"), out)
    assert.equals(124, rc)  -- still waiting when timeout(1) stopped it
  end)

  it("gives contexts a deadline, whatever the size", function()
    for _, t in ipairs({1e10, math.huge}) do
      local ctx = conc.with_timeout(conc.background(), t)
      local d, ok = ctx:deadline()
      assert.is_true(ok)
      assert.is_true(d > conc.now() + 1e9)
      local ctx2 = conc.with_deadline(conc.background(), t)
      d, ok = ctx2:deadline()
      assert.is_true(ok)
      assert.is_true(d >= 9e9)
      assert.is_nil(ctx:err())
      assert.is_nil(ctx2:err())
    end
  end)
end)

describe("a timer's channel keeps it alive", function()
  local function count(name)
    return conc.stats().objects[name] or 0
  end
  local function gc()
    for _ = 1, 4 do collectgarbage() end
  end

  it("a worker given only t.C receives after the timer is dropped",
     function()
    local before = count("conc.timer")
    local t = conc.timer(0.2)
    local h = conc.go(function(c) return c:recv(5) end, t.C)
    t = nil  -- luacheck: ignore 311 (dropped for the GC)
    gc()
    assert.is_true(count("conc.timer") <= before)  -- the Lua object is gone
    local v, ok = support.join_ok(h)
    assert.is_true(ok)
    assert.equals("float", math.type(v))
  end)

  it("a worker given only ticker.C receives every tick", function()
    local before = count("conc.ticker")
    local tk = conc.ticker(0.02)
    local h = conc.go(function(c)
      local n = 0
      for _ = 1, 3 do
        if c:recv(5) then n = n + 1 end
      end
      return n
    end, tk.C)
    tk = nil  -- luacheck: ignore 311 (dropped for the GC)
    gc()
    assert.is_true(count("conc.ticker") <= before)
    assert.equals(3, support.join_ok(h))
  end)

  it("frees a dropped timer, ticker or after with its channel", function()
    gc()
    local chans = count("conc.chan")
    local timers, tickers = count("conc.timer"), count("conc.ticker")
    do
      -- held only to be counted, then dropped for the GC
      local a = conc.after(3600)  -- luacheck: ignore 231
      local t, tk = conc.timer(3600), conc.ticker(3600)
      local c1, c2 = t.C, tk.C  -- luacheck: ignore 231
      assert.equals(chans + 3, count("conc.chan"))
      a, t, tk, c1, c2 = nil, nil, nil, nil, nil  -- luacheck: ignore 311
    end
    gc()
    -- at most as many as before: idle workers of earlier specs may still
    -- be letting go of their own objects meanwhile (counts only drop)
    assert.is_true(count("conc.chan") <= chans)
    assert.is_true(count("conc.timer") <= timers)
    assert.is_true(count("conc.ticker") <= tickers)
  end)

  it("a context held only through its done channel still times out",
     function()
    local ctx = conc.with_timeout(conc.background(), 0.05)
    local h = conc.go(function(done) return done:recv(5) end, ctx:done())
    ctx = nil  -- luacheck: ignore 311 (dropped for the GC)
    gc()
    local v, ok = support.join_ok(h)
    assert.is_nil(v)
    assert.is_false(ok)  -- closed: the deadline canceled it
  end)
end)

-- Go's panic in a goroutine ends the program with its message; here a
-- worker's error waits for a join, and a main script that waits for what
-- the worker never sent gets the deadlock report: it names the failure.
describe("a failed worker nobody joined", function()
  local function count(out, text)
    local n = 0
    for _ in out:gmatch(text:gsub("%p", "%%%0")) do n = n + 1 end
    return n
  end

  it("is named in the deadlock report, once", function()
    for _, spawn in ipairs({"conc.go(boom)",
                            "conc.waitgroup():go(boom)"}) do
      local out, rc = support.run_script(([[
        local conc = require("conc")
        local results = conc.chan()
        local function boom() error("boom in worker"); results:send(1) end
        %s
        print(results:recv())
      ]]):format(spawn))
      assert.are.equal(2, rc, out)
      assert.matches("all workers are asleep - deadlock!", out, 1, true)
      assert.are.equal(1, count(out, "failed and was never joined: "), out)
      assert.matches(
        "worker 1 failed and was never joined: [^\n]*boom in worker", out)
      assert.matches("main: waits in chan receive", out, 1, true)
    end
  end)

  it("is named in the error of mode \"error\", and not again when collected",
    function()
      local out, rc = support.run_script([[
        local conc = require("conc")
        conc.set_deadlock_mode("error")
        local h = conc.go(function() error({code = 7}) end)
        h:wait()
        local ok, err = pcall(conc.chan().recv, conc.chan())
        assert(not ok)
        print(err)
        h = nil
        collectgarbage()
        collectgarbage()
      ]])
      assert.are.equal(0, rc, out)
      assert.are.equal(1, count(out, "failed and was never joined"), out)
      assert.matches("worker 1 failed and was never joined: " ..
        "(error object is a table value)", out, 1, true)
    end)

  it("is not named once a join returned its error; at most ten are", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local joined = conc.go(function() error("seen") end)
      assert(not joined:join())
      local hs = {}
      local function fail(k) error("fail " .. k) end
      for i = 1, 15 do hs[i] = conc.go(fail, i) end
      for i = 1, 15 do hs[i]:wait() end
      conc.chan():recv()
    ]])
    assert.are.equal(2, rc, out)
    assert.is_nil(out:find("seen", 1, true), out)
    assert.are.equal(10, count(out, "failed and was never joined"), out)
    -- (which ten: the first to fail, in any order)
    local named = 0
    for id, k in out:gmatch("worker (%d+) failed and was never joined: " ..
                            "[^\n]*fail (%d+)\n") do
      assert.are.equal(tonumber(id) - 1, tonumber(k), out)
      named = named + 1
    end
    assert.are.equal(10, named, out)
    assert.matches("... and 5 more failed workers", out, 1, true)
  end)
end)
