-- Hardening (issue 11): what a determined user did to conc, and what it
-- must do instead. One `describe` per point; the codec's points, the
-- receive-only channels and the diagnostics have spec files of their own.
local conc = require("conc")
local support = require("support")

describe("the end of the program", function()
  -- Point 8: a finalizer that waits while the main state closes.
  it("a finalizer that waits forever at exit is reported as a deadlock",
    function()
      -- Made before conc is loaded: finalized after conc's own sentinel.
      local out, rc, took = support.run_script([[
        local early = setmetatable({}, {__gc = function()
          require("conc").chan():recv()
        end})
        local conc = require("conc")
        print("script done")
      ]], 20)
      assert.equal(2, rc)
      assert.matches("script done", out, 1, true)
      assert.matches("all workers are asleep - deadlock!", out, 1, true)
      assert.matches("main: waits in", out, 1, true)
      assert.is_true(took < 10)
    end)

  it("a finalizer made after conc was loaded is reported too", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local ch = conc.chan()
      local late = setmetatable({}, {__gc = function() ch:recv() end})
    ]], 20)
    assert.equal(2, rc)
    assert.matches("all workers are asleep - deadlock!", out, 1, true)
  end)

  it("a finalizer may still wait for a worker at exit", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local ch = conc.chan()
      conc.go(function(c) c:send("from the worker") end, ch)
      local late = setmetatable({}, {__gc = function()
        print(ch:recv())
      end})
    ]], 20)
    assert.equal(0, rc)
    assert.equal("from the worker\ttrue\n", out)
  end)

  -- Point 9: the report of a failed worker nobody joined.
  it("reports a non-string error of a never-joined worker in full",
    function()
      local out, rc = support.run_script([[
        local conc = require("conc")
        assert(conc.go(function() error({code = 1}) end):wait())
        assert(conc.go(function() error(false) end):wait())
        collectgarbage()
        collectgarbage()
        print("collected")
      ]])
      assert.equal(0, rc)
      assert.matches("failed and was never joined: (error object is a " ..
        "table value)\n", out, 1, true)
      assert.matches("failed and was never joined: (error object is a " ..
        "boolean value)\n", out, 1, true)
    end)

  -- Point 16: workers that are only returning when the script ends.
  it("does not report workers that are only returning at the end",
    function()
      -- Each worker's last channel operation releases the main script,
      -- then it works ~1 ms before it returns (a slow <close>, a deferred
      -- wg:done()): the script ends while every worker still runs.
      local out, rc = support.run_script([[
        local conc = require("conc")
        local function busy()
          local x = 0
          for i = 1, 200000 do x = x + i end
          return x
        end
        for round = 1, 20 do
          local results = conc.chan(4)
          local wg = conc.waitgroup()
          for w = 1, 4 do
            wg:add(1)
            conc.go(function(out, g, work)
              local _ <close> = setmetatable({}, {__close = function()
                work()
                g:done()
              end})
              out:send(w)
            end, results, wg, busy)
          end
          for _ = 1, 4 do results:recv() end
        end
        -- the workers of the last round are still in their <close>
        print("done")
      ]], 30)
      assert.equal(0, rc)
      assert.equal("done\n", out)
    end)

  it("reports a worker still blocked at the end, without waiting long",
    function()
      local out, rc, took = support.run_script([[
        local conc = require("conc")
        local h = conc.go(function() conc.chan():recv() end)
        local t0 = conc.now()
        print("spawned", h:id())
      ]], 20)
      assert.equal(0, rc)
      assert.matches("the main script ended with 1 worker still running " ..
        "(id 1)", out, 1, true)
      assert.is_true(took < 10)
    end)

  it("reports a worker that is still computing after the grace", function()
    -- The main script polls rather than waits: a wait would run the
    -- task itself (helping) and could only get back from its endless
    -- loop by preempting it, a signal that TSan holds back while the
    -- thread runs uninstrumented code (the Lua VM): that is the
    -- preemption specs' business (tasks_spec), not this one's.
    local out, rc = support.run_script([[
      local conc = require("conc")
      local ready = conc.chan()
      conc.go(function(r) r:send(true) while true do end end, ready)
      while conc.select({{"recv", ready}, default = true}) == "default" do
      end
    ]], 20)
    assert.equal(0, rc)
    assert.matches("still running (id 1)", out, 1, true)
  end)
end)

describe("once:call always finishes", function()
  -- Point 6: whatever fails while the outcome is shared, the once ends.
  it("results that cannot travel: the runner gets them, others an error",
    function()
      local once = conc.once()
      local co = coroutine.create(print)
      local got = once:call(function() return co end)
      assert.equal(co, got)  -- the runner's own value
      local h = conc.go(function(o)
        return pcall(o.call, o, function() return "not run" end)
      end, once)
      assert.is_true(h:wait(5), "a later caller waits forever")
      local ok, pok, err = h:join()
      assert.is_true(ok)
      assert.is_false(pok)
      assert.matches("conc.once:call: result #1: cannot transfer a coroutine",
        err, 1, true)
    end)

  it("an error value that cannot travel: later callers get its text",
    function()
      local once = conc.once()
      local co = coroutine.create(print)
      local ok, err = pcall(once.call, once, function() error(co) end)
      assert.is_false(ok)
      assert.equal(co, err)  -- the runner's own error value
      local h = conc.go(function(o)
        return pcall(o.call, o, function() end)
      end, once)
      assert.is_true(h:wait(5), "a later caller waits forever")
      local _, pok, err2 = h:join()
      assert.is_false(pok)
      assert.matches("^thread: ", err2)
    end)

  it("sharing that runs out of memory still ends the once", function()
    -- In a worker near its memory limit, each round fills the heap to
    -- the limit, frees a little more than the round before, then runs a
    -- once whose results need memory to be encoded; another caller must
    -- always get an outcome.
    local h = conc.go({memory_limit = 300000}, function()
      local c = require("conc")
      local hung, rounds = 0, 0
      for i = 1, 300 do
        local o = c.once()
        local ballast = {}
        pcall(function() while true do ballast[#ballast + 1] = {} end end)
        for _ = 1, i do ballast[#ballast] = nil end
        pcall(o.call, o, function()
          return {print, {1, 2, 3}, function() return 1 end}
        end)
        ballast = nil
        collectgarbage()
        local other = c.go(function(oo)
          return pcall(oo.call, oo, function() return "again" end)
        end, o)
        if other:wait(5) then rounds = rounds + 1 else hung = hung + 1 end
      end
      return hung, rounds
    end)
    local ok, hung, rounds = h:join()
    assert.is_true(ok, hung)
    assert.equal(0, hung)
    assert.equal(300, rounds)
  end)
end)

-- Point 7 (guards never leave a lock held when memory runs out) is
-- tested in C, csrc/test/test_lua_guard.c: a Lua state whose allocator
-- fails the k-th allocation, for every k, is deterministic where a
-- memory_limit filled from Lua is not (each caught error shrinks the Lua
-- stack and call list, which then grow back outside the pcalls).

describe("conc.go's options", function()
  -- Point 11.
  it("raises for an unknown option, naming it", function()
    local ok, err = pcall(conc.go, {memory_limt = 1e6}, function() end)
    assert.is_false(ok)
    assert.matches("conc.go: unknown option 'memory_limt'", err, 1, true)
    ok, err = pcall(conc.go, {true}, function() end)
    assert.is_false(ok)
    assert.matches("conc.go: unknown option '1'", err, 1, true)
  end)

  it("does not take a callable table for options", function()
    local callable = setmetatable({}, {__call = function() return 1 end})
    local ok, err = pcall(conc.go, callable, 1)
    assert.is_false(ok)
    assert.matches("conc.go: argument #1 is a callable table", err, 1, true)
    ok, err = pcall(conc.go, setmetatable({}, {}), function() end)
    assert.is_false(ok)
    assert.matches("options table must be a plain table", err, 1, true)
  end)

  it("still takes memory_limit, as an integer or an integral float",
    function()
      assert.same({true, 7}, {conc.go({memory_limit = 1e6}, function()
        return 7
      end):join()})
    end)
end)

describe("memory_limit", function()
  -- Point 18: it bounds the worker's Lua heap, not conc objects' memory.
  it("does not count what the worker puts in channels and maps", function()
    local ch, m = conc.chan(1000), conc.map()
    local h = conc.go({memory_limit = 256 * 1024}, function(c, map)
      local kb = ("x"):rep(1024)
      for i = 1, 1000 do  -- ~1 MB in the channel's buffer
        assert(c:try_send(kb))
        map:store(i, kb)  -- and ~1 MB in the map
      end
      return collectgarbage("count") < 256
    end, ch, m)
    local ok, small = h:join()
    assert.is_true(ok, small)
    assert.is_true(small)
    assert.equal(1000, #ch)
    assert.equal(1000, #m)
    assert.equal(1024, #ch:recv())
  end)

  it("counts the worker's own Lua values", function()
    local h = conc.go({memory_limit = 256 * 1024}, function()
      local t = {}
      for i = 1, 1000 do t[i] = ("x"):rep(1024) .. i end
      return #t
    end)
    local ok, err = h:join()
    assert.is_false(ok)
    assert.matches("ran out of memory: its limit is 262144 bytes", err, 1,
      true)
  end)

  -- The base of the limit was the state's count as the task began,
  -- garbage an earlier task left in it included: once a collection
  -- freed that, the task had it as room (100 MB left: 82 MB live under
  -- a limit of 1 MB, in most rounds at 2 Ps).
  it("gives no task the room an earlier task's garbage takes", function()
    for _ = 1, 5 do
      assert(conc.go(function() local _ = ("x"):rep(40 * 2^20) end):join())
      local ok, live = conc.go({memory_limit = 1e6}, function()
        local t = {}
        pcall(function()
          for i = 1, 1e4 do t[i] = ("y"):rep(1e5) .. i end
        end)
        return #t * 1e5
      end):join()
      assert.is_true(ok, live)
      assert.is_true(live <= 1e6, live .. " bytes live")
    end
  end)

  -- A locked task's message handler (its traceback, an error value's
  -- __tostring) ran under the limit, a light task's did not: the same
  -- error read "ran out of memory" in one and its text in the other.
  it("counts neither kind of task's error reporting", function()
    for _, locked in ipairs({false, true}) do
      local ok, err = conc.go({memory_limit = 1e6, locked = locked},
        function()
          error(setmetatable({}, {__tostring = function()
            local t = {}
            for i = 1, 200 do t[i] = ("x"):rep(10000) .. i end
            return #t == 200 and "OBJ" or "?"  -- ~2 MB held as it runs
          end}))
        end):join()
      assert.is_false(ok)
      assert.matches("^OBJ %(conc.go: error value: cannot transfer", err)
    end
  end)

  -- A task's <close> methods after an error, and its finalizers at its
  -- end, ran after the limit was lifted for conc's reporting: each built
  -- 512 MB under a limit of 200 KB. They are the task's code: limited.
  it("bounds the task's <close> methods and finalizers at its end",
    function()
      for _, locked in ipairs({false, true}) do
        local opts = {memory_limit = 200000, locked = locked}
        local ok, err = conc.go(opts, function()
          local _ <close> = setmetatable({}, {__close = function()
            local t = {}
            for i = 1, 1e7 do t[i] = i end
            error("built " .. #t)  -- (not reached: no memory for it)
          end})
          error("first")
        end):join()
        assert.is_false(ok)
        assert.matches("ran out of memory: its limit is 200000 bytes", err, 1,
          true)
        local built = conc.chan(1)
        ok, err = conc.go(opts, function(built)
          setmetatable({}, {__gc = function()
            local t = {}
            for i = 1, 1e7 do t[i] = i end
            built:send(#t)
          end})
          return "returned"
        end, built):join()
        assert.are.same({true, "returned"}, {ok, err})
        assert.are.equal(0, #built)  -- the finalizer ran out first
        -- and the room the task had is still there for them
        ok, err = conc.go(opts, function(built)
          local _ <close> = setmetatable({}, {__close = function()
            local t = {}
            for i = 1, 1000 do t[i] = i end
            built:send(#t)
          end})
          error("second")
        end, built):join()
        assert.is_false(ok)
        assert.matches("second", err, 1, true)
        assert.are.equal(1000, built:recv())
      end
    end)

  -- A constructor whose new object's box could not be made (no memory)
  -- left the reference with a caller that never gave it back: every
  -- object a task made as it ran out leaked, and a context its whole
  -- chain of parents.
  it("leaks nothing that a task was making when it ran out", function()
    local function count()
      collectgarbage()
      collectgarbage()
      local n = 0
      for _, v in pairs(conc.stats().objects) do n = n + v end
      return n
    end
    local makers = {
      function(conc)
        local t = {}
        for i = 1, 1e7 do t[i] = conc.map() end
        return #t
      end,
      function(conc)
        local t, c = {}, conc.background()
        for i = 1, 1e7 do c = conc.with_cancel(c); t[i] = c end
        return #t
      end,
    }
    conc.background()  -- made once for good (with its done channel)
    local base = count()
    for _, make in ipairs(makers) do
      for _ = 1, 5 do
        local ok, err = conc.go({memory_limit = 200000}, make, conc):join()
        assert.is_false(ok)
        assert.matches("ran out of memory", err, 1, true)
      end
    end
    -- Their states are collected once the program is idle: wait for it.
    local deadline = conc.now() + 10
    while count() > base and conc.now() < deadline do conc.sleep(0.01) end
    assert.are.equal(base, count())
  end)

  -- Running out while conc decoded (a joined task's results, the task's
  -- own function) read as "stack overflow (conc: too many values)" or
  -- "module 'conc' cannot be loaded here": the stack's growth refused
  -- for want of memory, and a memory error made into a plain one. In a
  -- fresh process: its states have yet to load conc.
  local function every_failure_names_the_limit(body)
    local out, rc = support.run_script([[
      local conc = require("conc")
      local failed = 0
      for limit = 1024, 12000, 16 do
        local ok, err = conc.go({memory_limit = limit}, function()
          ]] .. body .. [[
        end):join()
        if not ok then
          failed = failed + 1
          assert(tostring(err):find("ran out of memory", 1, true), err)
        end
      end
      assert(failed > 0, "no limit was small enough")
      print("OK")
    ]], 60)
    assert.are.equal(0, rc, out)
    assert.matches("OK", out, 1, true)
  end

  it("says so when it is reached in a join's results", function()
    every_failure_names_the_limit([[
      local h = conc.go(function() return {1, ("z"):rep(100)}, 2, 3 end)
      return select("#", h:join())
    ]])
  end)

  it("says so when it is reached while the task's function arrives",
    function()
      every_failure_names_the_limit("return conc ~= nil")
    end)
end)

describe("contexts with a timeout too large to count", function()
  it("schedule no timer: deadlock detection still works", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local ctx = conc.with_timeout(conc.background(), math.huge)
      assert(ctx:deadline())  -- recorded, 292 years away
      ctx = nil
      collectgarbage()
      print(conc.stats().objects["conc.ctx"] or 0)
      conc.chan():recv()
    ]], 20)
    assert.equal(2, rc)
    assert.matches("all workers are asleep - deadlock!", out, 1, true)
  end)
end)

describe("print in workers", function()
  it("writes whole lines: lines printed at once never mix", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      local wg = conc.waitgroup()
      for w = 1, 8 do
        wg:add(1)
        conc.go(function(id, g)
          for i = 1, 300 do print("worker", id, "line", i, ("x"):rep(60)) end
          g:done()
        end, w, wg)
      end
      wg:wait()
    ]], 30)
    assert.are.equal(0, rc, out)
    local n = 0
    for line in out:gmatch("[^\n]*\n") do
      n = n + 1
      assert.matches("^worker\t%d\tline\t%d+\t" .. ("x"):rep(60) .. "\n$", line)
    end
    assert.are.equal(8 * 300, n)
  end)
end)

describe("objects made and dropped in a loop", function()
  -- The collector is told of each object's C side: unseen, dropped
  -- objects piled up cycle after cycle (60,000 channels waiting to be
  -- freed after 200,000 made; 4.5 GB RSS after 12 M contexts). Run in a
  -- script of its own and in a task: each state's collector paces by its
  -- own live heap, which busted's would make several MB here.
  it("are freed as they go, in the main script and in a task", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      -- the most objects not yet freed, and Lua heap (KB) over what
      -- there was before, while make() runs 200,000 times
      local function churn(make)
        local function live()
          local n = 0
          for _, k in pairs(conc.stats().objects) do n = n + k end
          return n
        end
        collectgarbage()
        local base_objects, base_kb = live(), collectgarbage("count")
        local peak_objects, peak_kb = 0, 0
        for i = 1, 200000 do
          make()
          if i % 1000 == 0 then
            peak_objects = math.max(peak_objects, live() - base_objects)
            peak_kb = math.max(peak_kb, collectgarbage("count") - base_kb)
          end
        end
        return peak_objects, peak_kb
      end
      local makers = {
        chan = function() local _ = conc.chan(4) end,
        mutex = function() local _ = conc.mutex() end,
        ctx = function()
          local _, cancel = conc.with_cancel(conc.background())
          cancel()
        end,
      }
      for _, name in ipairs({"chan", "mutex", "ctx"}) do
        local objects, kb = churn(makers[name])
        print(("main %s %d %d"):format(name, objects, math.ceil(kb)))
      end
      local ok, objects, kb = conc.go(churn, makers.chan):join()
      assert(ok, objects)
      print(("task chan %d %d"):format(objects, math.ceil(kb)))
    ]], 120)
    assert.are.equal(0, rc, out)
    local seen = 0
    for where, name, objects, kb in out:gmatch("(%a+) (%a+) (%d+) (%d+)") do
      seen = seen + 1
      assert.is_true(tonumber(objects) < 5000, ("%s %s: %s objects not " ..
        "yet freed"):format(where, name, objects))
      assert.is_true(tonumber(kb) < 2048, ("%s %s: %s KB of Lua heap")
        :format(where, name, kb))
    end
    assert.are.equal(4, seen, out)
  end)
end)

describe("long chains of objects", function()
  -- Freeing an object that held the last reference to the next one
  -- recursed once per link (chan_destroy -> conc_msg_free -> ...,
  -- ctx_destroy -> its parent), and so did cancelling a context's
  -- descendants: a task's stack overflowed at 6,000-20,000 links
  -- (SIGSEGV). Each runs in a script of its own, in a task.
  local SAN = os.getenv("CONC_SANITIZER") ~= nil
  local function in_a_task(n, body)
    local out, rc = support.run_script(([[
      local conc = require("conc")
      local h = conc.go(function(conc, n)
        %s
      end, conc, %d)
      local ok, got = h:join()
      assert(ok, got)
      print(got)
    ]]):format(body, SAN and n // 4 or n), 120)
    assert.are.equal(0, rc, out)
    return out
  end

  -- A chain of 20,000 objects of `class`, each made by `make` and linked
  -- to the one before by `link` (x, head), is freed: none is left.
  local function chain_is_freed(class, make, link)
    local out = in_a_task(20000, ([[
      local before = conc.stats().objects["%s"] or 0
      local head = %s
      for _ = 1, n do
        local x = %s
        %s
        head = x
      end
      head = nil
      collectgarbage()
      collectgarbage()
      return conc.stats().objects["%s"] - before
    ]]):format(class, make, make, link, class))
    assert.matches("^0\n", out)
  end

  it("a channel whose buffered value holds the previous one, 20,000 " ..
     "deep, is freed", function()
    chain_is_freed("conc.chan", "conc.chan(1)", "x:send(head)")
  end)

  it("a map that stores the previous one, 20,000 deep, is freed",
    function()
      chain_is_freed("conc.map", "conc.map()", 'x:store("next", head)')
    end)

  it("a chain of 100,000 with_value contexts is freed", function()
    local out = in_a_task(100000, [[
      local c = conc.background()
      for i = 1, n do c = conc.with_value(c, "k", i) end
      assert(c:value("k") == n)
      c = nil
      collectgarbage()
      collectgarbage()
      return "freed"
    ]])
    assert.matches("^freed\n", out)
  end)

  it("cancelling the root of 20,000 nested contexts cancels every one",
    function()
      local out = in_a_task(20000, [[
        local root, cancel = conc.with_cancel(conc.background())
        local c, all = root, {}
        for i = 1, n do
          c = conc.with_cancel(c)
          all[i] = c
        end
        cancel()
        for i = 1, n do
          assert(all[i]:err() == "context canceled", i)
          assert(all[i]:done():try_recv() == nil and
                 select(2, all[i]:done():try_recv()) == false, i)
        end
        return "canceled " .. #all
      ]])
      assert.matches("^canceled %d+\n", out)
    end)
end)

-- Runs a script at MAXPROCS 2 that prints "bad N" for its count of
-- rounds gone wrong, and asserts there were none.
local function none_bad(script)
  local out, rc = support.run_script(script, 120, "export CONC_MAXPROCS=2")
  assert.are.equal(0, rc, out)
  assert.matches("bad 0\n", out)
end

describe("a context's cancel", function()
  it("returns once every descendant is canceled, even the second call",
    function()
      -- Go's cancel cancels the children holding c.mu, which a second
      -- cancel takes: it returns after them. The second one here
      -- returned at once, while the first was still at its children.
      none_bad([[
        local conc = require("conc")
        local kids_n = os.getenv("CONC_SANITIZER") and 2000 or 20000
        local bad = 0
        for _ = 1, 10 do
          local parent, cancel = conc.with_cancel(conc.background())
          local kids = {}
          for i = 1, kids_n do kids[i] = conc.with_cancel(parent) end
          local go = conc.atomic(0)
          local h = conc.go({locked = true}, function(cancel, go)
            while go:load() == 0 do end
            cancel()
          end, cancel, go)
          go:store(1)
          repeat until parent:err()  -- the first has closed its done
          cancel()
          for i = #kids, 1, -1 do
            if kids[i]:err() == nil then bad = bad + 1 break end
          end
          assert(h:join())
        end
        print("bad " .. bad)
      ]])
    end)
end)

describe("a context's err", function()
  it("is never set while its done channel is still open", function()
    -- Go: "If Done is not yet closed, Err returns nil". The error was
    -- stored, then done closed apart: a reader between the two saw
    -- "context canceled" while done():try_recv() said it would block.
    none_bad([[
      local conc = require("conc")
      local bad = 0
      for _ = 1, tonumber(os.getenv("CONC_SANITIZER") and 5000 or 50000) do
        local ctx, cancel = conc.with_cancel(conc.background())
        local h = conc.go(function(cancel) cancel() end, cancel)
        while true do
          local err = ctx:err()
          local _, ok = ctx:done():try_recv()  -- false: closed
          if err and ok ~= false then bad = bad + 1 end
          if err then break end
        end
        h:join()
      end
      print("bad " .. bad)
    ]])
  end)
end)
