-- Signals (conc.signal) and Ctrl-C in the main script's waits. Every
-- case runs in a lua5.4 process of its own (support.run_script) that
-- sends itself signals: `kill -SIG $PPID` from a shell of io.popen. Not
-- os.execute: system(3) ignores SIGINT and SIGQUIT in the whole process
-- while its child runs, so a Ctrl-C sent from there is lost.
local support = require("support")

-- ThreadSanitizer defers an asynchronous signal until the thread it
-- lands on enters a call TSan intercepts; conc parks its threads with
-- raw futex system calls, which TSan does not intercept, so under TSan a
-- signal sent while every thread is parked is never handled (the waits
-- then time out). A TSan artifact: the plain, ASan and valgrind runs
-- test signals.
if os.getenv("CONC_SANITIZER") == "tsan" then
  describe("signals", function()
    it("are tested without TSan", function()
      pending("not under TSan: it defers signals while threads park")
    end)
  end)
  return
end

-- A worker that sends SIGNAL to the process after `delay` seconds, then
-- stays alive (sleeping, so never "asleep for good"): had it ended, the
-- main script's wait would be a deadlock before the signal was handled.
local function kill_later(signal, delay)
  return ([[
conc.go(function()
  conc.sleep(%s)
  kill("%s")
  conc.sleep(30)
end)
]]):format(delay or 0.3, signal)
end

local function script(body)
  return 'local conc = require("conc")\n' ..
    'local function kill(s) ' ..
    'io.popen("kill -" .. s .. " $PPID"):close() end\n' ..
    body
end

describe("Ctrl-C in the main script", function()
  local waits = {
    ["conc.sleep"] = "conc.sleep(30)",
    ["ch:recv"] = "conc.chan():recv()",
    ["ch:send"] = "conc.chan():send(1)",
    ["buffered ch:recv"] = "conc.chan(4):recv()",
    ["h:join"] = "conc.go(function() conc.sleep(30) end):join()",
    ["wg:wait"] = "local wg = conc.waitgroup(); wg:add(1); wg:wait()",
    ["mu:lock"] = "local mu = conc.mutex(); mu:lock(); mu:lock()",
    ["rw:lock"] = "local rw = conc.rwmutex(); rw:rlock(); rw:lock()",
    ["rw:rlock"] = "local rw = conc.rwmutex(); rw:lock(); rw:rlock()",
    ["c:wait"] = "local c = conc.cond(conc.mutex()); c.L:lock(); c:wait()",
    ["lim:wait"] = "local l = conc.limiter(0.01, 1); l:allow(); l:wait()",
    ["lim:wait(ctx)"] = "local l = conc.limiter(0.01, 1); l:allow(); " ..
      "l:wait(1, (conc.with_cancel(conc.background())))",
    ["s:acquire"] = "local s = conc.semaphore(1); s:acquire(); s:acquire()",
    ["g:go at its limit"] = "local g = conc.errgroup(); g:set_limit(1); " ..
      "g:go(function() require('conc').sleep(30) end); g:go(print)",
    ["g:wait"] = "local g = conc.errgroup(); " ..
      "g:go(function() require('conc').sleep(30) end); g:wait()",
    ["once:call"] = "local o = conc.once(); conc.go(function(x) " ..
      "x:call(function() conc.sleep(30) end) end, o); conc.sleep(0.05); " ..
      "o:call(function() end)",
    ["conc.select"] =
      "conc.select{{'recv', conc.chan()}, {'recv', conc.chan(1)}}",
    ["conc.select{}"] = "conc.select{}",
    ["ch:recv with a timeout"] = "conc.chan():recv(30)",
  }
  -- Runs `before`, then `wait` in the main script, Ctrl-C'd at 0.3 s:
  -- the wait must end with interrupted!, status 1, within `limit` s.
  local function interrupts(before, wait, limit, env)
    local out, rc, took = support.run_script(script(before ..
      kill_later("INT") .. wait .. '\nprint("not reached")'), 20, env)
    assert.are.equal(1, rc, out)
    assert.matches("interrupted!", out, 1, true)
    assert.is_nil(out:find("not reached", 1, true))
    assert.is_true(took < limit, "took " .. took)
  end

  for name, wait in pairs(waits) do
    it("ends " .. name .. " with interrupted!, status 1", function()
      interrupts("", wait, 10)
    end)
  end

  -- The main script's thread runs ready tasks while it waits: with
  -- tasks that compute for ever there are always some, and it never
  -- reached the check made before it sleeps (the Ctrl-C was lost).
  for _, procs in ipairs({1, 2}) do
    it("ends a wait while endless tasks keep it busy (MAXPROCS " ..
       procs .. ")", function()
      -- (it took 7 s to 20 s, a timeout, before the fix)
      interrupts(
        "for _ = 1, 4 do conc.go(function() while true do end end) end\n",
        "conc.chan():recv()", 4, "export CONC_MAXPROCS=" .. procs)
    end)
  end

  -- (lua.c lets one Ctrl-C be caught: the next kills the process)
  it("leaves a cond's mutex held after an interrupted wait", function()
    local out, rc = support.run_script(script(kill_later("INT", 0.2) .. [[
local c = conc.cond(conc.mutex())
c.L:lock()
print(pcall(c.wait, c))
print(c.L:try_lock(), pcall(c.L.unlock, c.L))  -- held: Wait's promise
]]), 20)
    assert.are.equal(0, rc, out)
    assert.matches("^false\t.-interrupted!\nfalse\ttrue\n", out)
  end)

  it("an interrupted writer lets the readers behind it in", function()
    local out, rc = support.run_script(script(kill_later("INT", 0.3) .. [[
local rw = conc.rwmutex()
rw:rlock()
local h = conc.go(function(r)  -- queues behind the waiting writer
  conc.sleep(0.1)
  r:rlock()
  r:runlock()
  return "reader admitted"
end, rw)
print(pcall(rw.lock, rw))  -- interrupted while a reader holds it
print(h:join())
rw:runlock()
print(rw:try_lock())
]]), 20)
    assert.are.equal(0, rc, out)
    assert.matches("^false\t.-interrupted!\ntrue\treader admitted\ntrue\n",
      out)
  end)

  it("can be caught by pcall, and the next wait is not interrupted", function()
    local out, rc = support.run_script(script(kill_later("INT") .. [[
local ok, err = pcall(conc.sleep, 30)
print(ok, err)
print(conc.sleep(0.05))
]]), 20)
    assert.are.equal(0, rc, out)
    assert.matches("false\t.-interrupted!", out)
    assert.matches("\ntrue\n", out, 1, true)
  end)

  it("leaves workers running until the process ends", function()
    local out, rc = support.run_script(script(kill_later("INT") .. [[
local ticks = conc.chan(100)
conc.go(function() for i = 1, 1e9 do ticks:send(i); conc.sleep(0.01) end end)
local ok = pcall(conc.sleep, 30)
local a = ticks:recv()
local b = ticks:recv()
print("after", ok, b > a)
]]), 20)
    assert.are.equal(0, rc, out)
    assert.matches("after\tfalse\ttrue", out, 1, true)
  end)
end)

describe("conc.signal.notify", function()
  it("delivers each signal as its name", function()
    local out, rc = support.run_script(script([[
local ch = conc.chan(1)
conc.signal.notify(ch, "SIGUSR1", "SIGUSR2", "SIGHUP", "SIGTERM", "SIGINT")
for _, s in ipairs{"USR1", "USR2", "HUP", "TERM", "INT"} do
  kill(s)
  print(ch:recv())
end
]]), 20)
    assert.are.equal(0, rc, out)
    assert.are.equal("SIGUSR1\ttrue\nSIGUSR2\ttrue\nSIGHUP\ttrue\n" ..
                     "SIGTERM\ttrue\nSIGINT\ttrue\n", out)
  end)

  it("misses a signal when the channel is full, never blocking", function()
    local out, rc = support.run_script(script([[
-- `log` is notified first, so `full` (notified last) comes first in a
-- delivery: once log has a signal, full's send for it was tried.
local log, full = conc.chan(10), conc.chan(1)
conc.signal.notify(log, "SIGUSR1")
conc.signal.notify(full, "SIGUSR1")
for i = 1, 4 do
  kill("USR1")
  assert(log:recv() == "SIGUSR1")
end
print(#full, (full:recv()), full:try_recv())
]]), 20)
    assert.are.equal(0, rc, out)
    assert.matches("^1\tSIGUSR1\tnil\tnil\twould block", out)
  end)

  it("delivers to every channel notified, from any worker", function()
    local out, rc = support.run_script(script([[
local a, b = conc.chan(1), conc.chan(1)
conc.go(function(x) conc.signal.notify(x, "SIGUSR2") end, a):join()
conc.signal.notify(b, "SIGUSR2")
conc.go(function() kill("USR2") end):join()
print((a:recv()), (b:recv()))
]]), 20)
    assert.are.equal(0, rc, out)
    assert.matches("SIGUSR2\tSIGUSR2", out, 1, true)
  end)

  it("turns the default action off: SIGTERM does not end the process",
     function()
    local out, rc = support.run_script(script([[
local ch = conc.chan(1)
conc.signal.notify(ch, "SIGTERM")
kill("TERM")
print("alive", ch:recv())
]]), 20)
    assert.are.equal(0, rc, out)
    assert.matches("alive\tSIGTERM", out, 1, true)
  end)

  it("is no deadlock: the main script may wait for a signal alone",
     function()
    local out, rc = support.run_script(script([[
local ch = conc.chan(1)
conc.signal.notify(ch, "SIGUSR1")
conc.go(function() conc.sleep(0.2); kill("USR1") end)
print(ch:recv())
]]), 20)
    assert.are.equal(0, rc, out)
    assert.matches("SIGUSR1", out, 1, true)
  end)

  it("raises for misuse", function()
    local conc = require("conc")
    assert.has_error(function() conc.signal.notify(conc.chan(1), "SIGFOO") end,
      "conc.signal.notify: unknown signal 'SIGFOO'")
    assert.has_error(function()
      conc.signal.notify(conc.chan(1):recv_only(), "SIGUSR1")
    end, "conc.signal.notify: send to receive-only channel")
    assert.has_error(function()
      conc.signal.notify(conc.with_cancel(conc.background()):done(), "SIGUSR1")
    end, "conc.signal.notify: send to receive-only channel")
    assert.has_error(function() conc.signal.notify({}, "SIGUSR1") end)
    assert.has_error(function()
      conc.signal.context(conc.background(), "SIGKILL")
    end, "conc.signal.context: unknown signal 'SIGKILL'")
    assert.has_error(function() conc.signal.context(nil, "SIGINT") end)
    conc.signal.stop(conc.chan())  -- never notified: nothing to do
  end)
end)

describe("conc.signal.stop", function()
  it("gives the default action back: the process dies of SIGTERM",
     function()
    local out, rc = support.run_script(script([[
local ch = conc.chan(1)
conc.signal.notify(ch, "SIGTERM")
conc.signal.stop(ch)
io.stdout:write("stopped\n"); io.stdout:flush()
kill("TERM")
conc.sleep(5)
print("not reached")
]]), 20)
    assert.matches("stopped", out, 1, true)
    assert.is_nil(out:find("not reached", 1, true))
    assert.are.equal(128 + 15, rc, out)
  end)

  -- The wait right before the stop makes the next sleep skip its look
  -- at the handler (at most one per 10 ms): the stop itself wraps it.
  it("gives lua.c's Ctrl-C back: the wait ends with interrupted!",
     function()
    local out, rc = support.run_script(script([[
local ch = conc.chan(1)
conc.signal.notify(ch, "SIGINT")
kill("INT")
print("caught", ch:recv())
conc.chan():recv(0.001)  -- a wait looked at SIGINT's action just now
conc.signal.stop(ch)
]] .. kill_later("INT") .. [[
conc.sleep(30)
print("not reached")
]]), 20)
    assert.are.equal(1, rc, out)
    assert.matches("caught\tSIGINT", out, 1, true)
    assert.matches("interrupted!", out, 1, true)
  end)

  it("keeps a signal on while another channel is notified of it",
     function()
    local out, rc = support.run_script(script([[
local a, b = conc.chan(1), conc.chan(1)
conc.signal.notify(a, "SIGUSR1")
conc.signal.notify(b, "SIGUSR1")
conc.signal.stop(a)
kill("USR1")
print((b:recv()), a:try_recv())
]]), 20)
    assert.are.equal(0, rc, out)
    assert.matches("SIGUSR1\tnil\tnil\twould block", out, 1, true)
  end)
end)

describe("conc.signal.context", function()
  it("is canceled by the signal, with its name as the cause", function()
    local out, rc = support.run_script(script([[
local ctx, stop = conc.signal.context(conc.background(), "SIGINT", "SIGTERM")
conc.go(function() conc.sleep(0.2); kill("TERM") end)
print(ctx:done():recv())
print(ctx:err(), ctx:cause())
kill("INT")  -- still notified: no interrupt
conc.sleep(0.1)
print("alive")
stop()
]]), 20)
    assert.are.equal(0, rc, out)
    assert.matches("nil\tfalse\ncontext canceled\tSIGTERM\nalive", out, 1, true)
  end)

  it("bounds a wait, which then fails as a canceled context does",
     function()
    local out, rc = support.run_script(script([[
local ctx, stop <close> = conc.signal.context(conc.background(), "SIGUSR1")
conc.go(function() conc.sleep(0.2); kill("USR1") end)
print(conc.chan():recv(ctx))
]]), 20)
    assert.are.equal(0, rc, out)
    assert.matches("nil\tcontext canceled", out, 1, true)
  end)

  it("stop cancels it and gives the action back; it travels to workers",
     function()
    local out, rc = support.run_script(script([[
local parent, cancel = conc.with_cancel(conc.background())
local ctx, stop = conc.signal.context(parent, "SIGTERM")
conc.go(function(s) s() end, stop):join()
print(ctx:err())
stop()  -- idempotent
kill("TERM")
conc.sleep(5)
print("not reached")
]]), 20)
    assert.matches("context canceled", out, 1, true)
    assert.is_nil(out:find("not reached", 1, true))
    assert.are.equal(128 + 15, rc, out)
  end)

  it("is canceled with its parent", function()
    local conc = require("conc")
    local parent, cancel = conc.with_cancel(conc.background())
    local ctx, stop = conc.signal.context(parent, "SIGUSR2")
    cancel()
    assert.are.same({nil, false}, {ctx:done():recv()})
    assert.are.equal("context canceled", ctx:err())
    stop()
  end)
end)
