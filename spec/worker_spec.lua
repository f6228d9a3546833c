local conc = require("conc")
local support = require("support")

describe("conc.go", function()
  it("runs fn(...) and join returns true and its results", function()
    local h = conc.go(function(a, b) return a + b, a * b, "x" end, 6, 7)
    assert.are.same({true, 13, 42, "x"}, {h:join()})
  end)

  it("join may be called again and returns the same results", function()
    local h = conc.go(function() return {k = "v"} end)
    local _, t1 = h:join()
    local _, t2 = h:join()
    assert.are.same({k = "v"}, t1)
    assert.are.same(t1, t2)
  end)

  it("runs on another OS thread, in parallel", function()
    -- two workers that can only finish if both run at once
    local a, b = conc.chan(), conc.chan()
    local h1 = conc.go(function(x, y) x:send(1); return y:recv() end, a, b)
    local h2 = conc.go(function(x, y) local v = x:recv(); y:send(v + 1) end,
      a, b)
    assert.are.same({true, 2, true}, {h1:join()})
    assert.is_true((h2:join()))
  end)

  it("a worker error: join returns false and the error with a traceback",
    function()
      local h = conc.go(function()
        local function inner() error("boom") end
        inner()
      end)
      local ok, err = h:join()
      assert.is_false(ok)
      assert.matches("boom", err, 1, true)
      assert.matches("stack traceback:", err, 1, true)
      assert.matches("in local 'inner'", err, 1, true)
      assert.are.equal("failed", h:status())
    end)

  it("a <close> variable that raises while a task unwinds from an error "
    .. "makes its error the task's, light or locked (as pcall)", function()
    local function f(e)
      local _ <close> = setmetatable({}, {__close = function(_, err)
        error({from_close = true, got = err}, 0)
      end})
      error(e, 0)
    end
    for _, opts in ipairs({{}, {locked = true}}) do
      local ok, err = conc.go(opts, f, "orig"):join()
      assert.is_false(ok)
      -- the closing method got the task's error (with its traceback, as
      -- a message handler makes it), and raised its own
      assert.is_true(err.from_close)
      assert.matches("^orig\nstack traceback:\n", err.got)
      -- a closing method that does not raise leaves the error as it was
      ok, err = conc.go(opts, function()
        local _ <close> = setmetatable({}, {__close = function() end})
        error({code = 7})
      end):join()
      assert.is_false(ok)
      assert.are.same({code = 7}, err)
    end
  end)

  it("a <close> variable's error while a task unwinds has a traceback, " ..
     "light or locked", function()
    -- A light task's read "stack traceback:" and nothing: closing had
    -- taken the frames. It shows those the first error unwound.
    local function f()
      local _ <close> = setmetatable({}, {__close = function()
        error("close err")
      end})
      error("body err")
    end
    for _, opts in ipairs({{}, {locked = true}}) do
      local ok, err = conc.go(opts, f):join()
      assert.is_false(ok)
      assert.matches("close err\nstack traceback:\n.-worker_spec%.lua:%d+:",
        err)
    end
  end)

  it("a worker error value that is a table travels as a table", function()
    local h = conc.go(function() error({code = 42}) end)
    local ok, err = h:join()
    assert.is_false(ok)
    assert.are.same({code = 42}, err)
  end)

  it("a worker error never affects the process or other workers", function()
    local hs = {}
    for i = 1, 20 do
      hs[i] = conc.go(function(n)
        if n % 2 == 0 then error("even " .. n) end
        return n
      end, i)
    end
    for i = 1, 20 do
      local ok, v = hs[i]:join()
      if i % 2 == 0 then
        assert.is_false(ok)
        assert.matches("even " .. i, v, 1, true)
      else
        assert.are.same({true, i}, {ok, v})
      end
    end
  end)

  it("results that cannot travel become the worker's error", function()
    local h = conc.go(function() return coroutine.create(print) end)
    local ok, err = h:join()
    assert.is_false(ok)
    assert.are.equal("conc.go: result #1: cannot transfer a coroutine", err)
  end)

  it("wait with a timeout, done channel usable in select, id", function()
    local gate = conc.chan()
    local h = conc.go(function(g) return g:recv() end, gate)
    assert.is_true(math.type(h:id()) == "integer" and h:id() > 0)
    assert.is_false(h:wait(0.02))
    assert.are.equal("running", h:status())
    assert.are.equal("timeout",
      conc.select{{"recv", h:done()}, timeout = 0.01})
    gate:send("go")
    assert.are.same({1, nil, false}, {conc.select{{"recv", h:done()}}})
    assert.is_true(h:wait(0))
    assert.is_true(h:wait())
    assert.are.equal("done", h:status())
    assert.are.same({true, "go", true}, {h:join()})
  end)

  it("conc.id is 0 in the main script and the handle's id in a worker",
    function()
      assert.are.equal(0, conc.id())
      local h = conc.go(function() return conc.id() end)
      local _, id = h:join()
      assert.are.equal(h:id(), id)
    end)

  it("workers get the parent's package.path and can require conc",
    function()
      local path = package.path
      local h = conc.go(function()
        local c = require("conc")
        return package.path, type(c.chan), type(string.format)
      end)
      assert.are.same({true, path, "function", "function"}, {h:join()})
    end)

  it("workers have every standard library, as globals and by require",
    function()
      for _ = 1, 3 do
        local h = conc.go(function()
          return math.floor(2.5), os.time() > 0, type(io.write),
            utf8.char(72, 105), type(debug.traceback),
            require("math") == math, string.rep("x", 2), table.concat({1, 2}),
            coroutine.isyieldable()
        end)
        assert.are.same({true, 2, true, "function", "Hi", "function", true,
                         "xx", "12", false}, {h:join()})
      end
    end)

  it("strings have their methods and arithmetic in a new worker state",
    function()
      -- More workers at once than idle threads: some run in new states,
      -- whose string library opens on first use (a stand-in metatable).
      local n = conc.stats().idle_threads + 3
      local go, hs = conc.chan(0), {}
      for i = 1, n do
        hs[i] = conc.go(function(start)
          start:recv()
          local s = "ab"
          return s:upper(), "10" + 1, -"2", "7" // "2", "2" ^ "3",
            ("x"):rep(3), #s, string.format("%d", 5)
        end, go)
      end
      go:close()
      for i = 1, n do
        assert.are.same({true, "AB", 11, -2, 3, 8.0, "xxx", 2, "5"},
                        {hs[i]:join()})
      end
    end)

  it("every task starts with fresh globals", function()
    MY_GLOBAL_FROM_MAIN = 1
    for _ = 1, 10 do
      local h = conc.go(function()
        local before = LEAKED
        LEAKED = true
        return before == nil, MY_GLOBAL_FROM_MAIN == nil, _G.print ~= nil
      end)
      assert.are.same({true, true, true, true}, {h:join()})
    end
    MY_GLOBAL_FROM_MAIN = nil
  end)

  it("every task's math.random has a seed of its own", function()
    -- tasks one after another reuse a pooled state, within one second
    local seen, n = {}, 0
    for _ = 1, 50 do
      local ok, v = conc.go(function()
        return math.random(1, 1 << 53)
      end):join()
      assert.is_true(ok)
      if not seen[v] then n = n + 1 end
      seen[v] = true
    end
    assert.are.equal(50, n)
  end)

  it("workers can start workers", function()
    local h = conc.go(function()
      local inner = conc.go(function(x) return x * 2, conc.id() end, 21)
      local ok, v, id = inner:join()
      return ok, v, id ~= conc.id()
    end)
    assert.are.same({true, true, 42, true}, {h:join()})
  end)

  it("200 live workers at once", function()
    local start, results = conc.chan(), conc.chan(200)
    local hs = {}
    for i = 1, 200 do
      hs[i] = conc.go(function(s, r, n)
        s:recv()  -- all park here until start is closed
        r:send(n)
      end, start, results, i)
    end
    start:close()
    local seen = {}
    for _ = 1, 200 do
      local v = results:recv()
      assert.is_nil(seen[v])
      seen[v] = true
    end
    for i = 1, 200 do assert.is_true((hs[i]:join())) end
    for i = 1, 200 do assert.is_true(seen[i]) end
  end)

  it("spawns and joins many short workers in a row", function()
    local sum = 0
    for i = 1, 500 do
      local _, v = conc.go(function(x) return x end, i):join()
      sum = sum + v
    end
    assert.are.equal(500 * 501 / 2, sum)
  end)

  it("a memory limit fails the worker with a clear error, not the process",
    function()
      local function fill(n)  -- travels as bytecode: no upvalues
        local t = {}
        for i = 1, n do t[i] = i end
        return #t
      end
      local limit = {memory_limit = 200000}
      local function fails_over_limit(h)
        local ok, err = h:join()
        assert.is_false(ok)
        assert.are.equal(("conc.go: worker %d ran out of memory: its limit "
          .. "is 200000 bytes"):format(h:id()), err)
      end
      fails_over_limit(conc.go(limit, fill, 1e7))
      -- within the limit all is well, and the thread serves later tasks
      assert.are.same({true, 1000}, {conc.go(limit, fill, 1000):join()})
      for _ = 1, 4 do
        assert.are.same({true, 100000}, {conc.go(fill, 100000):join()})
      end
      -- unlimited tasks allocate without the counter; a limited task after
      -- them is counted from what its state holds then
      fails_over_limit(conc.go(limit, fill, 1e7))
      assert.are.same({true, 1000}, {conc.go(limit, fill, 1000):join()})
      -- under a limit, memory freed at one block size serves another, as
      -- malloc's does (Lua's peak here is under 1 MB)
      local before = conc.stats().heap_bytes
      local cycled = conc.go({memory_limit = 2 * 2^20}, function()
        local kept = {}
        for class = 0, 13 do
          local t, pad = {}, string.rep("x", class * 16 + 8)
          for i = 1, 3000 do t[i] = pad .. i end
          for i = 1, 3000, 20 do kept[#kept + 1] = t[i] end
          t = nil  -- luacheck: ignore 311 (dropped for the GC)
          collectgarbage()
        end
        return #kept
      end)
      assert.are.same({true, 14 * 150}, {cycled:join()})
      assert.is_true(conc.stats().heap_bytes - before <= 2^20)
      -- a refusal that the emergency collection made good is no failure:
      -- the task's own error is reported
      local recovered = conc.go({memory_limit = 300000}, function()
        collectgarbage("stop")  -- garbage piles up to the limit
        for i = 1, 20000 do local _ = ("x"):rep(40) .. i end
        error("my own error", 0)
      end)
      local ok, err = recovered:join()
      assert.is_false(ok)
      assert.matches("^my own error", err)
      assert.has_error(function() conc.go({memory_limit = -1}, print) end,
        "conc.go: memory_limit must be a positive integer (bytes)")
    end)

  it("a task out of memory while the string library opens leaves later "
    .. "tasks the whole library", function()
    -- a fresh process, so that the pooled states have not opened it yet
    local out, rc = support.run_script([[
      local conc = require("conc")
      local function oom()
        return conc.go({memory_limit = 1000}, function()
          return #string.rep("x", 100)
        end):join()
      end
      for _ = 1, 3 do assert(not oom()) end
      for _ = 1, 20 do
        local ok, n, rep = conc.go(function()
          local n = 0
          for _ in pairs(string) do n = n + 1 end
          return n, string.rep("ab", 3)
        end):join()
        assert(ok and n == 17 and rep == "ababab", tostring(n))
      end
      print("ok")
    ]], 30)
    assert.are.equal(0, rc, out)
    assert.are.equal("ok\n", out)
  end)

  it("a state gives back the heap its task's garbage took", function()
    if os.getenv("CONC_HEAP") == "off" then
      pending("CONC_HEAP=off (memcheck, helgrind): no heap, malloc's blocks")
      return
    end
    local function build(n)  -- small blocks: a table and a string each
      local t = {}
      for i = 1, n do t[i] = {i, "item " .. i} end
      return #t, collectgarbage("count") * 1024
    end
    local before = conc.stats().heap_bytes
    local ok, n, used = conc.go(build, 100000):join()
    assert.are.same({true, 100000}, {ok, n})
    assert.is_true(used > 4 * 2^20, used .. " bytes in the task")
    -- the state went back to the pool collected and trimmed (a light
    -- task's state is shared by the tasks that come after)
    assert.is_true(conc.stats().heap_bytes <= before + 2^20,
      conc.stats().heap_bytes .. " now, " .. before .. " before")
    -- and the state goes on serving tasks
    assert.are.same({true, 10}, {(function(a, b) return a, b end)(
      conc.go(build, 10):join())})
  end)

  it("warn in a worker behaves as in lua5.4", function()
    local calls = [[
      warn("hidden")
      warn("x", "@on")      -- off: a last piece "@on" turns them on
      warn("shown ", "in ", "pieces")
      warn("@on", "!")      -- on: a first piece of several is no control
      warn("@off")
      warn("hidden too")
    ]]
    local plain = support.run_script(calls)
    local out, rc = support.run_script(([[
      local conc = require("conc")
      assert(conc.go(load(%q)):join())
    ]]):format(calls))
    assert.are.equal(0, rc, out)
    assert.are.equal("Lua warning: shown in pieces\nLua warning: @on!\n", plain)
    assert.are.equal(plain, out)
  end)

  it("spawning past what the system allows fails as a return value",
    function()
      if not support.ulimit_v_works() then
        pending("not under a sanitizer (ulimit -v)")
        return
      end
      -- Light tasks take no thread: 3,000 start and end within 400 MB of
      -- address space (with 2 processors: each scheduler thread may get a
      -- malloc arena of its own, 64 MB of address space, and with 8 of
      -- them (make specs-procs) the locked tasks found none left).
      -- Locked tasks take a thread each (1 MB of stack): past the limit
      -- conc.go fails as a return value, never a crash.
      local out, rc = support.run_script([[
        local conc = require("conc")
        local function spawn_all(opts)
          local park = conc.chan()
          local started, refused, failed = 0, 0, 0
          -- (the script's own allocations, outside pcall, are made before
          -- memory runs out: a Lua memory error there would end it)
          local hs = {}
          for i = 1, 3000 do hs[i] = false end
          local function park_on(p) p:recv() end
          for _ = 1, 3000 do
            -- (out of memory in this script's own state, Lua raises its
            -- usual memory error: that is a refusal too, and no crash)
            local ok, h, err, name = pcall(conc.go, opts, park_on, park)
            if ok and h then
              started = started + 1
              hs[started] = h
            elseif ok then
              assert(name == "spawn" and err:find("conc.go: ", 1, true) == 1,
                     err)
              refused = refused + 1
            else
              assert(tostring(h):find("not enough memory", 1, true), h)
              refused = refused + 1
            end
          end
          park:close()
          for i = 1, started do
            -- a join's result needs memory too: its memory error counts
            local ok, jok, err = pcall(hs[i].join, hs[i])
            if ok then ok, err = jok, err else err = jok end
            hs[i] = false
            if not ok then
              -- a task whose state could not be made fails with why
              local e = tostring(err)
              assert(e:match("memory") or e:match("lua_State") or
                     e:match("stack overflow"), e)
              failed = failed + 1
            end
          end
          return started, refused + failed, refused
        end
        -- (light tasks take no thread each: all start, unless memory runs
        -- out first, which refuses some, as a return value)
        local s, _, refused = spawn_all({})
        print("light", s > 0 and s + refused == 3000)
        s, f = spawn_all({locked = true})
        print("locked", s > 0, f > 0)
      ]], 60, "ulimit -v 400000; export CONC_MAXPROCS=2")
      assert.are.equal(0, rc, out)
      assert.matches("light\ttrue\n", out)
      assert.matches("locked\ttrue\ttrue", out)
    end)

  it("a first spawn with no memory left for the scheduler's threads " ..
     "fails as a return value, and a later one starts them", function()
    if not support.ulimit_v_works() then
      pending("not under a sanitizer (ulimit -v)")
      return
    end
    -- The scheduler's monitor thread could not be started (its stack
    -- was 8 MB): the first conc.go aborted the process, pcall or not.
    -- Now a start that finds no monitor tries again, and fails as a
    -- spawn the system refuses while it cannot.
    for _ = 1, 3 do
      local out, rc = support.run_script([[
        local conc = require("conc")
      ]] .. support.FILL_ADDRESS_SPACE .. [[
        local ok, h, err, name = pcall(conc.go, function() return 7 end)
        fill = nil
        collectgarbage()
        collectgarbage()
        assert(ok, h)
        if h then
          print("full", select(2, h:join()))
        else
          print("full", err, name)
        end
        print("after", select(2, conc.go(function() return 42 end):join()))
      ]], 60, "ulimit -v 300000")
      assert.are.equal(0, rc, out)
      assert.is_truthy(out:find("full\t7\n", 1, true) or
        out:find("full\tconc.go: cannot create thread\tspawn\n", 1, true), out)
      assert.is_truthy(out:find("after\t42\n", 1, true), out)
    end
  end)

  it("rejects what is not a function", function()
    assert.has_error(function() conc.go(42) end)
    assert.has_error(function() conc.go() end)
  end)

  it("reports the error of a worker nobody joins on stderr", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local h = conc.go(function() error("nobody hears me") end)
      h:wait()
      h = nil
      collectgarbage()
      collectgarbage()
      print("end of script")
    ]])
    assert.are.equal(0, rc)
    assert.matches("end of script", out, 1, true)
    assert.matches("worker %d+ failed and was never joined: .*nobody hears me",
      out)
  end)

  it("a script that ends while workers run exits promptly and says so",
    function()
      local out, rc, dt = support.run_script([[
        local conc = require("conc")
        local never = conc.chan()
        for i = 1, 3 do conc.go(function(c) c:recv() end, never) end
        local busy = conc.go(function() while true do end end)
        print("main done")
      ]])
      assert.are.equal(0, rc)
      assert.is_true(dt < 10)
      assert.matches("main done", out, 1, true)
      assert.matches("the main script ended with 4 workers still running",
        out, 1, true)
    end)

  it("a script whose workers all finished exits silently", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      for i = 1, 10 do conc.go(function() return i end):join() end
      io.write("ok")
    ]])
    assert.are.equal(0, rc)
    assert.are.equal("ok", out)
  end)
end)
