local conc = require("conc")
local support = require("support")

describe("conc.workpool", function()
  it("runs every job exactly once and closes results on close", function()
    local p = conc.workpool(4, function(j) return j * j end)
    assert.are.equal(4, p:workers())
    local res = p:results()
    local feeder = conc.go(function(p)
      for i = 1, 300 do assert(p:submit(i)) end
      p:close()
    end, p)
    local seen, n = {}, 0
    for r in res:range() do
      assert.is_true(r.ok)
      assert.are.equal(r.job * r.job, r.value)
      assert.is_nil(seen[r.job])
      seen[r.job], n = true, n + 1
    end
    assert.are.equal(300, n)
    support.join_ok(feeder)
    assert.is_true(p:wait(5))
    assert.are.equal(0, p:workers())
  end)

  it("a failed job is a result, never lost, never fatal", function()
    local p = conc.workpool(2, function(j)
      if j == "raise" then error("boom", 0) end
      if j == "nil" then return nil, "refused" end
      if j == "false" then return nil, false end  -- a value, as cb:call
      return j
    end)
    local res = p:results()
    for _, j in ipairs({"raise", "ok", "nil", "false"}) do
      assert(p:submit(j))
    end
    local got = {}
    for _ = 1, 4 do
      local r = res:recv()
      got[r.job] = r
    end
    assert.are.same({job = "raise", ok = false, err = "boom"}, got.raise)
    assert.are.same({job = "ok", ok = true, value = "ok"}, got.ok)
    assert.are.same({job = "nil", ok = false, err = "refused"}, got["nil"])
    assert.are.same({job = "false", ok = true}, got["false"])
    conc.go(function(res) for _ in res:range() do end end, res)
    p:close()
    assert.are.equal(0, p:workers())
  end)

  it("submit blocks when the queue is full (backpressure)", function()
    local gate = conc.chan() -- shared by reference: fn waits for its close
    local p = conc.workpool(1, function(j) gate:recv() return j end,
      {queue = 2})
    assert.is_true(p:submit(0))
    local deadline = conc.now() + 5 -- until the worker holds job 0
    while p:len() > 0 and conc.now() < deadline do conc.sleep(0.001) end
    assert.is_true(p:try_submit(1))
    assert.is_true(p:try_submit(2))
    assert.is_false(p:try_submit(3))
    assert.are.equal(2, p:len())
    assert.are.same({nil, "timeout"}, {p:submit("late", 0.02)})
    local ctx, cancel = conc.with_cancel(conc.background())
    cancel()
    assert.are.same({nil, "context canceled"}, {p:submit("late", ctx)})
    gate:close()
    assert.is_true(p:submit(3, 5))
    local res = p:results()
    local jobs = {}
    conc.go(function(p) p:close() end, p)
    for r in res:range() do jobs[#jobs + 1] = r.job end
    assert.are.same({0, 1, 2, 3}, jobs) -- one worker: in order
  end)

  it("raises on submit after close; close twice is harmless", function()
    local p = conc.workpool(1, function(j) return j end)
    p:close()
    p:close()
    assert.has_error(function() p:submit(1) end,
      "conc.workpool:submit: submit on closed pool")
    assert.has_error(function() p:try_submit(1) end,
      "conc.workpool:try_submit: submit on closed pool")
    assert.are.same({nil, false}, {p:results():recv()})
  end)

  it("is submittable from any worker (shared by reference)", function()
    local p = conc.workpool(3, function(j) return j.w * 1000 + j.k end,
      {queue = 4})
    local res = p:results()
    local wg = conc.waitgroup()
    for w = 1, 4 do
      wg:add(1)
      conc.go(function(p, w, wg)
        for k = 1, 50 do assert(p:submit({w = w, k = k})) end
        wg:done()
      end, p, w, wg)
    end
    conc.go(function(wg, p) wg:wait() p:close() end, wg, p)
    local n, seen = 0, {}
    for r in res:range() do
      assert.is_nil(seen[r.value])
      seen[r.value], n = true, n + 1
    end
    assert.are.equal(200, n)
  end)

  it("its context stops the workers; wait returns then", function()
    local ctx, cancel = conc.with_cancel(conc.background())
    local p = conc.workpool(3, function(j) return j end, {ctx = ctx})
    assert.are.same({nil, "timeout"}, {p:wait(0.02)})
    cancel()
    assert.is_true(p:wait(5))
    assert.are.equal(0, p:workers())
    assert.are.same({nil, "context canceled"}, {p:submit(1)})
  end)

  it("a job or value that cannot travel is a result, never fatal",
    function()
      -- wp_ghost is loaded in this state only: no worker can load it
      package.loaded.wp_ghost = {f = function() return 1 end}
      local ghost = require("wp_ghost")
      local p = conc.workpool(2, function(job)
        if job.keep then job.co = coroutine.create(print) end  -- no way back
        if job.bad_value then return coroutine.create(print) end
        return job.n
      end)
      local h = conc.go(function(rs)
        local got = {}
        for r in rs:range() do got[#got + 1] = r end
        return got
      end, p:results())
      assert.is_true(p:submit({n = 1, keep = true}))
      assert.is_true(p:submit({n = 2, bad_value = true}))
      assert.is_true(p:submit({n = 3, fn = ghost.f}))
      for i = 4, 10 do assert.is_true(p:submit({n = i})) end
      p:close()
      local results = support.join_ok(h)
      assert.are.equal(10, #results)  -- every job has its result
      assert.is_true(p:wait(5))
      local by = {ok = 0, lost_job = 0, bad_value = 0, bad_job = 0}
      for _, r in ipairs(results) do
        if r.job_error then
          assert.is_nil(r.job)
          assert.is_true(r.ok)
          assert.are.equal(1, r.value)
          assert.matches("cannot transfer a coroutine", r.job_error, 1, true)
          by.lost_job = by.lost_job + 1
        elseif r.job and r.job.bad_value then
          assert.is_false(r.ok)
          assert.matches("cannot transfer a coroutine", r.err, 1, true)
          by.bad_value = by.bad_value + 1
        elseif r.job == nil then
          assert.is_false(r.ok)
          assert.matches("module 'wp_ghost' cannot be loaded here", r.err, 1,
            true)
          by.bad_job = by.bad_job + 1
        else
          assert.is_true(r.ok)
          assert.are.equal(r.job.n, r.value)
          by.ok = by.ok + 1
        end
      end
      assert.are.same({ok = 7, lost_job = 1, bad_value = 1, bad_job = 1}, by)
    end)

  it("an error value that cannot travel keeps its text, as join's",
    function()
      -- It read only why it could not travel ("conc.workpool: value,
      -- field 'err': cannot transfer ..."): the error itself was lost.
      local p = conc.workpool(1, function()
        error(setmetatable({}, {__tostring = function() return "MyErr" end}))
      end)
      assert.is_true(p:submit(1))
      local r = p:results():recv()
      p:close()
      assert.is_false(r.ok)
      assert.matches("^MyErr %(conc%.workpool: .*cannot transfer a table " ..
        "with a metatable%)$", r.err)
      assert.is_true(p:wait(5))
    end)

  it("ends when its function cannot reach its workers (no hang)",
    function()
      -- an upvalue from a module no worker can load: every worker fails
      -- as it starts, and is counted out all the same
      local out, rc = support.run_script([[
        local conc = require("conc")
        package.loaded.wp_ghost2 = {k = 1}
        local ghost = package.loaded.wp_ghost2
        local p = conc.workpool(2, function(j) return ghost.k + j end)
        print(p:wait(10), p:workers())
        local st = conc.stage(conc.chan(), function() return ghost.k end)
        print(st:recv(10))
      ]], 30)
      assert.are.equal(0, rc, out)
      assert.matches("\ntrue\t0\n", "\n" .. out, 1, true)  -- wait, workers
      assert.matches("\nnil\tfalse\n", "\n" .. out, 1, true)  -- closed
      assert.matches("module 'wp_ghost2' cannot be loaded here", out, 1, true)
    end)

  it("a submit blocked on a full queue ends when the pool's ctx does",
    function()
      local ctx, cancel = conc.with_cancel(conc.background())
      local gate = conc.chan()
      local p = conc.workpool(1, function(j) gate:recv() return j end,
                              {queue = 1, ctx = ctx})
      local rs = p:results()
      assert.is_true(p:submit(1))  -- taken by the worker, held at the gate
      while p:len() > 0 do conc.sleep(0.001) end  -- (polls a count)
      assert.is_true(p:submit(2))  -- fills the queue
      local h = conc.go(function(pool) return pool:submit(3) end, p)
      cancel()
      gate:close()
      assert.is_true(p:wait(5))
      assert.is_true(h:wait(5), "the blocked submit never ended")
      assert.are.same({true, nil, "context canceled"}, {h:join()})
      local n = 0
      for _ in rs:range() do n = n + 1 end
      assert.is_true(n <= 2)
    end)

  it("refuses bad arguments", function()
    assert.has_error(function() conc.workpool(0, print) end)
    assert.has_error(function() conc.workpool(1, 1) end)
    assert.has_error(function() conc.workpool(1, print, {queue = -1}) end,
      "conc.workpool: queue must be an integer from 0 to 2^31-1")
    assert.has_error(function() conc.workpool(1, print, {size = 1}) end,
      "conc.workpool: unknown option 'size'")
    local p = conc.workpool(1, function(j) return j end)
    assert.has_error(function() p:submit(io.stdout) end)
    assert.has_error(function() p:submit() end,
      "conc.workpool:submit: job expected")
    assert.has_error(function() p:try_submit() end,
      "conc.workpool:try_submit: job expected")
    assert.are.equal(0, #p:results(), "a job was queued")
    p:close()
    assert.is_nil(p:results():recv(), "a job was queued")
  end)
end)
