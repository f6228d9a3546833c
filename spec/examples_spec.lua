local support = require("support")

-- Every example runs to completion and prints what it should.
local expected = {
  ["goroutine_leak.lua"] = {contains = {"leaked workers: 1 (chan send at",
    "fixed:\tnil\tcontext deadline exceeded",
    "workers left besides the leaked one:\t0"}},
  ["worker_pool.lua"] = {lines = 20,
    pattern = "^Job %d+: Worker %d processed: task%-%d+$"},
  ["generic_pool.lua"] = {lines = 10, pattern = "^%d+$",
    contains = {"1\n4\n9\n16\n25\n36\n49\n64\n81\n100\n"}},
  ["pipeline.lua"] = {lines = 5, pattern = "^%d+$",
    contains = {"4\n16\n36\n64\n100\n"}},
  ["pipeline_cancel.lua"] = {contains = {"1\n4\n9\n"},
    last = "canceled; workers left:\t0"},
  ["fan_out_fan_in.lua"] = {last = "1 4 9 16 25 36 49 64 81 100"},
  ["fan_in_ctx.lua"] = {contains = {"received\t6",
    "closed by the context:\tcontext deadline exceeded",
    "got some ticks:\ttrue"}},
  ["pubsub.lua"] = {lines = 3, pattern = "^Sub[12] received: %a+ %- .+$",
    contains = {"Sub1 received: orders - Order #123",
      "Sub1 received: payments - Payment received",
      "Sub2 received: orders - Order #123"}},
  ["cond_queue.lua"] = {last = "total\t30"},
  ["graceful_shutdown.lua"] = {last = "Server stopped", lacks = {"failed"},
    contains = {
    "Server starting on :", "client: GET /hello -> 200 hello from worker",
    "\n\nShutting down...\n",
    "client: GET /slow during shutdown -> 200 slow answer from worker"}},
  ["buffer_pool.lua"] = {lines = 4,
    pattern = "^worker %d: %d+ requests, [01] buffers created$"},
  -- 5 at once (the burst), then one per 100 ms: the last near 1.5 s
  ["rate_limiter_ticker.lua"] = {lines = 20,
    pattern = "^Request %d+ at %d+%-%d+%-%d+ %d+:%d+:%d+ UTC m=%+%d+%.%d+$",
    check = function(lines)
      local function at(i)
        return tonumber(lines[i + 1]:match("m=%+([%d.]+)"))
      end
      for i = 0, 19 do assert.matches("^Request " .. i .. " ", lines[i + 1]) end
      assert.is_true(at(4) - at(0) < 0.05, "the burst was paced")
      assert.is_true(at(19) - at(4) >= 1.4, "15 ticks took " .. at(19) - at(4))
    end},
  ["rate_limiter.lua"] = {lines = 20,
    pattern = "^Request %d+\t%(%+%d+%.%d%ds%)$",
    check = function(lines)
      local function at(i)
        return tonumber(lines[i + 1]:match("%(%+([%d.]+)s%)"))
      end
      for i = 0, 19 do
        assert.matches("^Request " .. i .. "\t", lines[i + 1])
      end
      assert.is_true(at(4) < 0.05, "the burst was paced")
      assert.is_true(at(19) >= 1.45, "15 more events took " .. at(19))
    end},
  ["circuit_breaker.lua"] = {check = function(lines)
    assert.are.same({
      "request 1: error: service unavailable (state closed)",
      "request 2: error: service unavailable (state closed)",
      "  state: closed -> open (in main)",
      "request 3: error: service unavailable (state open)",
      "request 4: error: circuit breaker is open (state open)",
      "request 5: error: circuit breaker is open (state open)",
      "service recovers; waiting out the timeout",
      "request 6: error: circuit breaker is open (state open)",
      "  state: open -> half-open (in a worker)",
      "request 7: ok (state half-open)",
      "  state: half-open -> closed (in a worker)",
      "request 8: ok (state closed)",
      "request 9: ok (state closed)",
      "counts since it closed: 1 requests, 1 successes, 0 failures",
    }, lines)
  end},
  ["semaphore_chan.lua"] = {contains = {"processed item-1\n",
    "processed item-10\n", "processed 10 items, at most ",
    " at once (limit 3)", "TryAcquire on a free semaphore:\ttrue",
    "TryAcquire on a full semaphore:\tfalse"},
    count = {"^processed item%-%d+$", 10}, max_at_once = 3},
  ["semaphore_weighted.lua"] = {contains = {
    "processWithSemaphore(12 items, 4): <nil> (at most ",
    "processWithSemaphore(with a bad item): ",
    "processing bad: invalid item",
    "granted in order: writer (3), then together: reader 1, reader 2, " ..
    "reader 3"},
    max_at_once = 4},
  ["errgroup.lua"] = {contains = {"/a: 13 bytes: hello from /a",
    "/b: 13 bytes: hello from /b", "/c: 13 bytes: hello from /c",
    "Error: fetching http://127.0.0.1:", "/b: connection refused"},
    count = {"^http://127%.0%.0%.1:%d+/%a: 13 bytes: hello from /%a$", 3}},
  ["errgroup_limit.lua"] = {contains = {"processWithLimit(30 items): <nil>",
    ", limit 10: true",
    "processWithLimit(with a bad item): item-bad: HTTP 500"},
    max_at_once = 10},
  ["once.lua"] = {lines = 7, pattern = "^[ocw][a-z]+ .*[%d/p]$",
    contains = {"opening connection to postgres://localhost/app\nworker 1",
      "worker 5: using connection #1\n"}, last = "connections opened: 1"},
  ["sync_map.lua"] = {contains = {"config -> config (computed by worker ",
    "user:2 -> user:2 (computed by worker ", "24 lookups, 3 keys cached"},
    last = "every worker got the stored value: true"},
  ["buffered_vs_unbuffered.lua"] = {lines = 4, pattern = "^[ub][a-z()2]+: ",
    contains = {"unbuffered: send 1 after 0.", "s, send 3 after 0.",
      "buffered(2): send 1 after 0.0s, send 2 after 0.0s, send 3 after 0."}},
  ["timeout_select.lua"] = {lines = 3, pattern = "^%a+: +result=",
    contains = {"fast:     result=done in 0.1s err=nil",
      "slow:     result=nil err=timeout",
      "canceled: result=nil err=context canceled"}},
  ["map_vs_rwmutex.lua"] = {contains = {"read-mostly (1% writes), 4 workers",
    "write-heavy (50% writes), 4 workers"}, count_ok = 6,
    last = "a map under a RWMutex for general use; a channel owner when "
      .. "the state needs a single writer."},
}

describe("examples", function()
  local p = io.popen("ls examples/*.lua")
  for path in p:lines() do
    local name = path:match("[^/]+$")
    it(name .. " runs", function()
      -- (see spec/signal_spec.lua: TSan defers the SIGTERM it sends)
      if name == "graceful_shutdown.lua" and
         os.getenv("CONC_SANITIZER") == "tsan" then
        pending("not under TSan: it defers signals while threads park")
        return
      end
      -- Its fast fetch is 0.1 s of work against a 0.3 s timeout, and its
      -- first task's state is made within that time: TSan runs that ~10x
      -- slower. (The plain and ASan runs check it.)
      if name == "timeout_select.lua" and
         os.getenv("CONC_SANITIZER") == "tsan" then
        pending("not under TSan: its 0.1 s against 0.3 s is timing")
        return
      end
      local f = assert(io.open(path))
      local code = f:read("a")
      f:close()
      -- (under a sanitizer every park and turn of a task costs ~100x:
      -- the contended examples need longer)
      local out, rc = support.run_script(code,
        os.getenv("CONC_SANITIZER") and 120 or 30)
      assert.are.equal(0, rc, out)
      -- every example states what it must print: a new one without an
      -- entry in `expected` fails here rather than pass unchecked
      local want = expected[name]
      assert(want, "no expected output for examples/" .. name)
      local lines = {}
      for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      if want.lines then
        assert.are.equal(want.lines, #lines, out)
        for _, line in ipairs(lines) do assert.matches(want.pattern, line) end
      end
      if want.last then assert.are.equal(want.last, lines[#lines]) end
      if want.count then  -- exactly count[2] lines match count[1]
        local n = 0
        for _, line in ipairs(lines) do
          if line:match(want.count[1]) then n = n + 1 end
        end
        assert.are.equal(want.count[2], n, out)
      end
      if want.max_at_once then  -- "at most N at once": 1 <= N <= limit
        local n = tonumber(out:match("at most (%d+) at once"))
        assert(n and n >= 1 and n <= want.max_at_once, out)
      end
      for _, text in ipairs(want.lacks or {}) do
        assert.is_nil(out:find(text, 1, true), out)
      end
      for _, text in ipairs(want.contains or {}) do
        assert.matches(text, out, 1, true)
      end
      if want.check then want.check(lines, out) end
      if want.count_ok then -- timed lines: each variant checked its result
        local _, n = out:gsub("ops/s  ok\n", "")
        assert.are.equal(want.count_ok, n, out)
      end
    end)
  end
  p:close()
end)
