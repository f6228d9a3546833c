-- stress/stress.lua: the stress driver (`make stress`, `make stress-short`).
--
--   lua5.4 stress/stress.lua [seed] [operations]
--   STRESS_SEED=123 STRESS_OPS=1000000 lua5.4 stress/stress.lua
--
-- Runs rounds until at least `operations` conc operations (default
-- 10,000,000) have been done, two rounds at a time, each in a worker of
-- its own that spawns and joins the workers of its scenario:
--   flow    producers and consumers on one channel (capacity 0, 1 or up
--           to 64), with send, send with a timeout, select send with a
--           timeout, default or timer case, and the same kinds of receive
--   close   senders and receivers racing a close (a send that raises
--           "send on closed channel" is counted as not sent)
--   mesh    workers selecting over two send cases and a receive case
--           with a timeout or a default, against a hub selecting back
--   cancel  senders and receivers waiting on a context canceled
--           mid-wait (a wait that returns "context canceled" must have
--           moved nothing)
--   tree    workers spawning and joining workers, three levels deep
--   patterns  one of the chapter's objects under load: a semaphore's
--           holders never passing its size, an errgroup's sum, a
--           workpool's results, a merge's values, a pubsub's deliveries
--           (reached + dropped = published, in order per subscriber)
-- Every message carries a unique integer; what was sent successfully and
-- what was received are compared by count, sum and sum of squares (in
-- wrapping integer arithmetic: a loss and a duplicate cannot cancel).
--
-- Each worker counts the conc calls it makes (sends, receives, selects,
-- closes, cancels, spawns, joins) and returns the count through join.
-- The seed (printed first) fixes every random choice of the schedule:
-- the scenarios, their sizes, and each worker's choice of call; thread
-- interleavings aside, a seed reproduces a run. The last line is
--   stress: seed S, N operations, F failures
-- and the exit code is 0 only if F is 0. A round that does not finish
-- in ROUND_LIMIT seconds is a failure that ends the run (its workers
-- are stuck). STRESS_VERBOSE=1 prints each round's scenario and sizes
-- (the same for a seed, run after run). STRESS_BREAK=1 makes one consumer
-- drop a message, to show that the accounting catches it
-- (spec/stress_spec.lua runs that).
local conc = require("conc")

local ROUND_LIMIT = 120

local seed = math.tointeger(tonumber(arg[1] or os.getenv("STRESS_SEED")))
if not seed then  -- a fresh seed that fits in 31 bits, easy to retype
  seed = (os.time() ~ math.floor(conc.now() * 1e6)) % 2^31 // 1
end
local target = math.tointeger(tonumber(arg[2] or os.getenv("STRESS_OPS")))
  or 10000000
local break_one = os.getenv("STRESS_BREAK") == "1"
local verbose = os.getenv("STRESS_VERBOSE") == "1"  -- a line per round

-- ==== accounting ============================================================

-- A tally of messages: count, sum and sum of squares.
local function tally() return {n = 0, s = 0, s2 = 0} end

local function count(t, v)
  t.n, t.s, t.s2 = t.n + 1, t.s + v, t.s2 + v * v
end

local function merge(into, t)
  into.n, into.s, into.s2 = into.n + t.n, into.s + t.s, into.s2 + t.s2
end

local function same(a, b)
  return a.n == b.n and a.s == b.s and a.s2 == b.s2
end

-- "sent n, received m" for a failure note.
local function differ(what, sent, got)
  return ("%s: sent %d (sum %d), received %d (sum %d)"):format(what,
    sent.n, sent.s, got.n, got.s)
end

-- The message of a raise, without the position Lua prefixes.
local function raised(err)
  return tostring(err):gsub("^[^:]*:%d+: ", "")
end

-- ==== the waits each worker picks from ======================================
-- Each worker keeps its calls in st.ops: a call that raises is counted
-- before it is made.

-- Sends v on c by one of five kinds of call, retrying those that can
-- give up. Raises what a closed channel raises.
local function send_any(st, c, v, kind)
  st.ops = st.ops + 1
  if kind == 1 then
    c:send(v)
  elseif kind == 2 then  -- send with a timeout
    while not c:send(v, 0.002) do st.ops = st.ops + 1 end
  elseif kind == 3 then  -- select send with a timeout case
    while conc.select{{"send", c, v}, timeout = 0.002} ~= 1 do
      st.ops = st.ops + 1
    end
  elseif kind == 4 then  -- try_send, then select send with a timer case
    if c:try_send(v) then return end
    repeat
      st.ops = st.ops + 2  -- conc.after and the select
    until conc.select{{"send", c, v}, {"recv", conc.after(0.002)}} == 1
  elseif conc.select{{"send", c, v}, default = true} ~= 1 then
    st.ops = st.ops + 1  -- select send with a default, then a plain send
    c:send(v)
  end
end

-- Receives from c by one of five kinds of call, retrying those that can
-- give up; returns v, ok (ok false: closed and drained).
local function recv_any(st, c, kind)
  st.ops = st.ops + 1
  if kind == 1 then
    return c:recv()
  elseif kind == 2 then  -- recv with a timeout
    local v, ok = c:recv(0.002)
    while ok == nil do
      st.ops = st.ops + 1
      v, ok = c:recv(0.002)
    end
    return v, ok
  elseif kind == 3 then  -- select recv with a default, then a timeout
    local i, v, ok = conc.select{{"recv", c}, default = true}
    while i ~= 1 do
      st.ops = st.ops + 1
      i, v, ok = conc.select{{"recv", c}, timeout = 0.002}
    end
    return v, ok
  elseif kind == 4 then  -- try_recv, then select recv with a timer case
    local v, ok = c:try_recv()
    while ok == nil do
      st.ops = st.ops + 2  -- conc.after and the select
      local i
      i, v, ok = conc.select{{"recv", c}, {"recv", conc.after(0.002)}}
      if i ~= 1 then ok = nil end
    end
    return v, ok
  end
  -- one step of a range (the loop returns in its first pass on purpose)
  for v in c:range() do return v, true end  -- luacheck: ignore 512
  return nil, false
end

-- ==== workers ===============================================================

-- Sends k unique values (base + 1 .. base + k); returns the tally sent
-- and the calls made.
local function producer(c, base, k, wseed)
  math.randomseed(wseed)
  local sent, st = tally(), {ops = 0}
  for i = 1, k do
    send_any(st, c, base + i, math.random(5))
    count(sent, base + i)
  end
  return sent, st.ops
end

-- Receives until c is closed and drained; returns the tally received
-- and the calls made. lose: drop the first value (STRESS_BREAK).
local function consumer(c, wseed, lose)
  math.randomseed(wseed)
  local got, st = tally(), {ops = 0}
  while true do
    local v, ok = recv_any(st, c, math.random(5))
    if not ok then return got, st.ops end
    if lose then lose = false else count(got, v) end
  end
end

local CLOSED = {
  ["conc.chan:send: send on closed channel"] = true,
  ["conc.chan:try_send: send on closed channel"] = true,
  ["conc.select: case #1: send on closed channel"] = true,
}

-- Sends up to k values with pcall until the channel is closed under it;
-- returns the tally of the sends that returned, the calls made, and the
-- message of any raise other than "send on closed channel".
local function close_sender(c, base, k, wseed)
  math.randomseed(wseed)
  local sent, st = tally(), {ops = 0}
  for i = 1, k do
    local ok, err = pcall(send_any, st, c, base + i, math.random(5))
    if not ok then
      local msg = raised(err)
      return sent, st.ops, (not CLOSED[msg]) and msg or nil, true
    end
    count(sent, base + i)
  end
  return sent, st.ops
end

-- Receives until it has `first` values or stop is closed, closes c,
-- checks that a second close raises "close of closed channel", then
-- receives until c is drained. Returns the tally received, the calls,
-- and a note on a wrong result.
local function closer(c, stop, first, wseed)
  math.randomseed(wseed)
  local got, st = tally(), {ops = 0}
  while got.n < first do
    local i, v, ok = conc.select{{"recv", c}, {"recv", stop}}
    st.ops = st.ops + 1
    if i == 2 then break end
    if not ok then return got, st.ops, "closed before its close" end
    count(got, v)
  end
  c:close()
  local ok, err = pcall(c.close, c)
  st.ops = st.ops + 2
  if ok or raised(err) ~= "conc.chan:close: close of closed channel" then
    return got, st.ops, "second close: " .. tostring(err)
  end
  local more, calls = consumer(c, math.random(1 << 30))
  merge(got, more)
  return got, st.ops + calls
end

-- A mesh worker: sends k values on a or b by a select that also receives
-- from back, with a timeout, or a default then a timeout; returns the
-- tally sent, the tally received from back, and the calls made.
local function mesh_worker(a, b, back, base, k, wseed)
  math.randomseed(wseed)
  local sent, got, ops = tally(), tally(), 0
  local i = 1
  while i <= k do
    local v = base + i
    local cases = {{"send", a, v}, {"send", b, v}, {"recv", back}}
    if math.random(2) == 1 then cases.timeout = 0.002
    else cases.default = true end
    local j, rv = conc.select(cases)
    ops = ops + 1
    if j == "default" then  -- then wait, rather than spin
      cases.default, cases.timeout = nil, 0.002
      j, rv = conc.select(cases)
      ops = ops + 1
    end
    if j == 1 or j == 2 then
      count(sent, v)
      i = i + 1
    elseif j == 3 then
      count(got, rv)
    end
  end
  return sent, got, ops
end

-- A cancel sender: sends up to k values with ctx bounding each wait
-- (as an argument or a done case); a canceled wait sent nothing.
-- Returns the tally sent, the calls, and a note on a wrong result.
local function cancel_sender(c, ctx, base, k, wseed)
  math.randomseed(wseed)
  local sent, ops = tally(), 0
  for i = 1, k do
    local v = base + i
    ops = ops + 1
    if math.random(2) == 1 then
      local ok, reason = c:send(v, ctx)
      if not ok then
        if reason ~= "context canceled" then
          return sent, ops, "send: " .. tostring(reason)
        end
        return sent, ops, nil, true
      end
    elseif conc.select{{"send", c, v}, {"recv", ctx:done()}} == 2 then
      return sent, ops + 1, nil, true  -- (and ctx:done())
    else
      ops = ops + 1
    end
    count(sent, v)
  end
  return sent, ops
end

-- A cancel receiver: receives with ctx bounding each wait until it is
-- canceled; after `cancel_after` values (if given) it cancels. Returns
-- the tally received, the calls, and a note on a wrong result.
local function cancel_receiver(c, ctx, cancel, cancel_after, wseed)
  math.randomseed(wseed)
  local got, ops = tally(), 0
  while true do
    if cancel_after and got.n >= cancel_after then
      cancel()
      return got, ops + 1
    end
    ops = ops + 1
    if math.random(2) == 1 then
      local v, ok, reason = c:recv(ctx)
      if ok == nil then
        if v ~= nil or reason ~= "context canceled" then
          return got, ops, ("recv: %s, %s"):format(tostring(v), reason)
        end
        return got, ops, nil, true
      end
      count(got, v)
    else
      local j, v = conc.select{{"recv", c}, {"recv", ctx:done()}}
      ops = ops + 1
      if j == 2 then return got, ops, nil, true end
      count(got, v)
    end
  end
end

-- A tree node: sends its id on out, spawns `fan` children (depth - 1
-- levels below it) and joins them. Returns the calls of its subtree.
local function node(out, id, depth, fan)
  out:send(id)
  local ops = 1
  if depth == 0 then return ops end
  local hs = {}
  for j = 1, fan do
    hs[j] = conc.go(node, out, id * 8 + j, depth - 1, fan)
  end
  for j = 1, fan do
    local ok, sub = hs[j]:join()
    if not ok then error(sub, 0) end
    ops = ops + sub + 2  -- its spawn and its join
  end
  return ops
end

-- ==== scenarios (each runs in a round worker) ===============================

-- Spawns fn(...) for each argument list; returns the handles.
local function spawn_all(fn, arg_lists)
  local hs = {}
  for i, args in ipairs(arg_lists) do
    hs[i] = assert(conc.go(fn, table.unpack(args, 1, args.n)))
  end
  return hs
end

-- Joins every handle; returns an array of packed results and the calls
-- (a spawn and a join each). A worker that raised is a failure.
local function join_all(hs, notes)
  local results = {}
  for i, h in ipairs(hs) do
    local r = table.pack(h:join())
    if not r[1] then notes[#notes + 1] = "worker raised: " .. tostring(r[2]) end
    results[i] = r
  end
  return results, 2 * #hs
end

-- Sums the tallies at position `at` and the calls at `ops_at` of the
-- results; notes at `note_at` become failures, and a true at
-- note_at + 1 is an event (a send refused by a close, a canceled wait):
-- returns the tally, the calls and the events.
local function gather(results, at, ops_at, note_at, notes)
  local t, ops, events = tally(), 0, 0
  for _, r in ipairs(results) do
    if r[1] then
      merge(t, r[at])
      ops = ops + r[ops_at]
      if note_at and r[note_at] then notes[#notes + 1] = r[note_at] end
      if note_at and r[note_at + 1] then events = events + 1 end
    end
  end
  return t, ops, events
end

local function random_cap()
  local r = math.random(3)
  return r == 1 and 0 or r == 2 and 1 or math.random(2, 64)
end

local scenarios = {}

function scenarios.flow(notes)
  local c, P, C = conc.chan(random_cap()), math.random(4), math.random(4)
  if break_one then C = 1 end  -- the one consumer that drops a value
  local K = math.random(500, 4000)
  local pargs, cargs = {}, {}
  for p = 1, P do pargs[p] = {c, p << 24, K, math.random(1 << 30), n = 4} end
  for i = 1, C do
    cargs[i] = {c, math.random(1 << 30), break_one and i == 1, n = 3}
  end
  local cons = spawn_all(consumer, cargs)
  local prods = spawn_all(producer, pargs)
  local pres, o1 = join_all(prods, notes)
  c:close()
  local cres, o2 = join_all(cons, notes)
  local sent, o3 = gather(pres, 2, 3, nil, notes)
  local got, o4 = gather(cres, 2, 3, nil, notes)
  if sent.n ~= P * K then notes[#notes + 1] = "flow: a producer fell short" end
  if not same(sent, got) then notes[#notes + 1] = differ("flow", sent, got) end
  return o1 + o2 + o3 + o4 + 1, ("cap %d, %dx%d, %d each"):format(c:cap(),
    P, C, K)
end

function scenarios.close(notes)
  local c, S, R = conc.chan(random_cap()), math.random(4), math.random(3)
  local K = math.random(200, 2000)
  local first, stop = math.random(0, S * K), conc.chan()
  local sargs, rargs = {}, {}
  for s = 1, S do sargs[s] = {c, s << 24, K, math.random(1 << 30), n = 4} end
  for i = 1, R do rargs[i] = {c, math.random(1 << 30), n = 2} end
  local hs = spawn_all(consumer, rargs)
  local closer_h = assert(conc.go(closer, c, stop, first,
    math.random(1 << 30)))
  local sres, o1 = join_all(spawn_all(close_sender, sargs), notes)
  stop:close()  -- every sender is done: close now if not closed yet
  local cres, o2 = join_all(hs, notes)
  local kres, o3 = join_all({closer_h}, notes)
  local sent, o4, refused = gather(sres, 2, 3, 4, notes)
  local got, o5 = gather(cres, 2, 3, nil, notes)
  local kgot, o6 = gather(kres, 2, 3, 4, notes)
  merge(got, kgot)
  if not same(sent, got) then notes[#notes + 1] = differ("close", sent, got) end
  return o1 + o2 + o3 + o4 + o5 + o6 + 1, ("cap %d, %dx%d, %d each, " ..
    "close after %d"):format(c:cap(), S, R, K, first), refused
end

-- The hub of the mesh: receives on a and b, sends on back, until every
-- worker is done; returns what it received and sent, and its calls.
local function hub(a, b, back, hs)
  local got, sent, ops = tally(), tally(), 0
  local dones, left, next_back = {}, #hs, 1
  local v, ok
  for w, h in ipairs(hs) do dones[w] = h:done() end
  while left > 0 do
    local cases = {{"recv", a}, {"recv", b}, {"send", back, next_back},
                   n = 3 + #hs}
    for w = 1, #hs do cases[3 + w] = dones[w] and {"recv", dones[w]} end
    local i, value = conc.select(cases)
    ops = ops + 1
    if i == 1 or i == 2 then count(got, value)
    elseif i == 3 then count(sent, next_back); next_back = next_back + 1
    else dones[i - 3] = nil; left = left - 1 end
  end
  repeat  -- b's buffer may still hold what the last sends left there
    v, ok = b:try_recv()
    ops = ops + 1
    if ok then count(got, v) end
  until not ok
  return got, sent, ops + #hs
end

function scenarios.mesh(notes)
  local a, b, back = conc.chan(), conc.chan(math.random(8)), conc.chan(1)
  local W, K = math.random(2, 5), math.random(300, 2000)
  local args = {}
  for w = 1, W do
    args[w] = {a, b, back, w << 24, K, math.random(1 << 30), n = 6}
  end
  local hs = spawn_all(mesh_worker, args)
  local got, back_sent, ops = hub(a, b, back, hs)
  local res, o1 = join_all(hs, notes)
  local sent, o2 = gather(res, 2, 4, nil, notes)
  local back_got = gather(res, 3, 4, nil, notes)
  local v, ok = back:try_recv()  -- one may be left in back's buffer
  if ok then count(back_got, v) end
  if not same(sent, got) then notes[#notes + 1] = differ("mesh", sent, got) end
  if not same(back_sent, back_got) then
    notes[#notes + 1] = differ("mesh back", back_sent, back_got)
  end
  return ops + o1 + o2 + 1, ("%d workers, %d each"):format(W, K)
end

function scenarios.cancel(notes)
  local c = conc.chan(random_cap())
  local ctx, cancel = conc.with_cancel(conc.background())
  local S, R, K = math.random(4), math.random(3), math.random(200, 2000)
  local after = math.random(0, S * K)
  local sargs, rargs = {}, {}
  for s = 1, S do
    sargs[s] = {c, ctx, s << 24, K, math.random(1 << 30), n = 5}
  end
  for i = 1, R do  -- the first receiver cancels
    rargs[i] = {c, ctx, cancel, i == 1 and after or nil,
                math.random(1 << 30), n = 5}
  end
  local rhs = spawn_all(cancel_receiver, rargs)
  local sres, o1 = join_all(spawn_all(cancel_sender, sargs), notes)
  cancel()  -- every sender is done: end the receivers if not canceled yet
  local rres, o2 = join_all(rhs, notes)
  local sent, o3, e1 = gather(sres, 2, 3, 4, notes)
  local got, o4, e2 = gather(rres, 2, 3, 4, notes)
  local drained = 0
  while true do  -- what the buffer still holds was sent, not received
    local v, ok = c:try_recv()
    drained = drained + 1
    if not ok then break end
    count(got, v)
  end
  if not same(sent, got) then
    notes[#notes + 1] = differ("cancel", sent, got)
  end
  return o1 + o2 + o3 + o4 + drained + 3, ("cap %d, %dx%d, %d each, " ..
    "cancel after %d"):format(c:cap(), S, R, K, after), e1 + e2
end

function scenarios.tree(notes)
  local fan = math.random(2, 4)
  local nodes = 1 + fan + fan * fan + fan * fan * fan
  local out = conc.chan(nodes)
  local h = assert(conc.go(node, out, 1, 3, fan))
  local ok, ops = h:join()
  if not ok then notes[#notes + 1] = "tree: " .. tostring(ops); ops = 0 end
  out:close()
  local seen, n = {}, 0
  for id in out:range() do
    if seen[id] then notes[#notes + 1] = "tree: id twice: " .. id end
    seen[id], n = true, n + 1
  end
  if n ~= nodes then
    notes[#notes + 1] = ("tree: %d ids of %d nodes"):format(n, nodes)
  end
  return ops + n + 4, ("fan %d, %d workers"):format(fan, nodes)
end

-- ==== the chapter's objects (issue 12) ======================================
-- A `patterns` round exercises one of them under load, with the same
-- exact accounting: every value through exactly once.

-- Holds w (1..3) of sem K times, by acquire or by acquire with a
-- timeout; checks with the shared atomic `held` that the weight held at
-- once never passes the size. Returns its calls and a note if it did.
local function sem_user(sem, held, size, K, rseed)
  math.randomseed(rseed)
  local ops, over = 0, nil
  for _ = 1, K do
    local w = math.random(3)
    if math.random(2) == 1 then
      assert(sem:acquire(w))
      ops = ops + 1
    else
      ops = ops + 1
      while not sem:acquire(w, 0.002) do ops = ops + 1 end
    end
    local now = held:add(w)
    if now > size then over = ("semaphore: %d held of %d"):format(now, size) end
    held:add(-w)
    sem:release(w)
    ops = ops + 3
  end
  return ops, over
end

local patterns = {}

function patterns.semaphore(notes)
  local size, W = math.random(3, 6), math.random(2, 6)
  local K = math.random(200, 1500)
  local sem, held = conc.semaphore(size), conc.atomic(0)
  local args = {}
  for w = 1, W do
    args[w] = {sem, held, size, K, math.random(1 << 30), n = 5}
  end
  local res, ops = join_all(spawn_all(sem_user, args), notes)
  for _, r in ipairs(res) do
    if r[1] then
      ops = ops + r[2]
      if r[3] then notes[#notes + 1] = r[3] end
    end
  end
  if held:load() ~= 0 or not sem:try_acquire(size) then
    notes[#notes + 1] = "semaphore: weight left held at the end"
  end
  return ops + 3, ("semaphore %d, %d workers, %d each"):format(size, W, K)
end

function patterns.errgroup(notes)
  local g = conc.errgroup()
  local limit = math.random(-1, 4)
  if limit == 0 then limit = -1 end
  g:set_limit(limit)
  local N, acc, want = math.random(100, 600), conc.atomic(0), tally()
  for i = 1, N do
    g:go(function(a, v) a:add(v) end, acc, i)
    count(want, i)
  end
  local ok, err = g:wait()
  if not ok then notes[#notes + 1] = "errgroup: " .. tostring(err) end
  if acc:load() ~= want.s then
    notes[#notes + 1] = ("errgroup: sum %d, want %d"):format(acc:load(), want.s)
  end
  return 2 * N + 3, ("errgroup of %d, limit %d"):format(N, limit)
end

function patterns.workpool(notes)
  local n, K = math.random(1, 6), math.random(200, 3000)
  local p = conc.workpool(n, function(v) return v * 2 end,
                          {queue = math.random(0, 16)})
  local h = assert(conc.go(function(rs)
    local got, bad = tally(), 0
    for r in rs:range() do
      if not r.ok or r.value ~= r.job * 2 then bad = bad + 1 end
      count(got, r.job)
    end
    return got, bad
  end, p:results()))
  local sent = tally()
  for v = 1, K do
    assert(p:submit(v))
    count(sent, v)
  end
  p:close()
  local ok, got, bad = h:join()
  if not ok then notes[#notes + 1] = "workpool: " .. tostring(got)
  elseif bad > 0 then notes[#notes + 1] = "workpool: " .. bad .. " bad results"
  elseif not same(sent, got) then
    notes[#notes + 1] = differ("workpool", sent, got)
  end
  return 2 * K + 3, ("workpool of %d, %d jobs"):format(n, K)
end

function patterns.merge(notes)
  local M, C, K = math.random(2, 6), math.random(1, 3), math.random(200, 1500)
  local inputs, pargs = {}, {}
  for m = 1, M do
    inputs[m] = conc.chan(random_cap())
    pargs[m] = {inputs[m], m << 24, K, math.random(1 << 30), n = 4}
  end
  local out = conc.merge(inputs)
  local cargs = {}
  for i = 1, C do cargs[i] = {out, math.random(1 << 30), false, n = 3} end
  local cons = spawn_all(consumer, cargs)
  local pres, o1 = join_all(spawn_all(producer, pargs), notes)
  for m = 1, M do inputs[m]:close() end  -- the merged channel closes then
  local cres, o2 = join_all(cons, notes)
  local sent, o3 = gather(pres, 2, 3, nil, notes)
  local got, o4 = gather(cres, 2, 3, nil, notes)
  if not same(sent, got) then notes[#notes + 1] = differ("merge", sent, got) end
  return o1 + o2 + o3 + o4 + M + 1, ("merge of %d, %d consumers, %d each"):
    format(M, C, K)
end

-- A subscriber: receives until its channel is closed; returns how many
-- it got and whether they came in the order published.
local function subscriber(ch)
  local n, last, in_order = 0, 0, true
  for msg in ch:range() do
    n = n + 1
    if msg.payload <= last then in_order = false end
    last = msg.payload
  end
  return n, in_order
end

function patterns.pubsub(notes)
  local ps, S, P = conc.pubsub(), math.random(1, 8), math.random(200, 3000)
  local hs = {}
  for i = 1, S do
    hs[i] = assert(conc.go(subscriber,
      ps:subscribe("s" .. i, {"t"}, math.random(1, 64))))
  end
  local reached = 0
  for v = 1, P do reached = reached + ps:publish("t", v) end
  local dropped = 0
  for i = 1, S do
    dropped = dropped + ps:dropped("s" .. i)
    ps:unsubscribe("s" .. i)
  end
  local got = 0
  for i = 1, S do
    local ok, n, in_order = hs[i]:join()
    if not ok then notes[#notes + 1] = "pubsub: " .. tostring(n)
    else
      got = got + n
      if not in_order then notes[#notes + 1] = "pubsub: out of order" end
    end
  end
  if reached + dropped ~= S * P or got ~= reached then
    notes[#notes + 1] = ("pubsub: %d published to %d, reached %d, dropped " ..
      "%d, received %d"):format(P, S, reached, dropped, got)
  end
  return P + 3 * S + got, ("pubsub, %d subscribers, %d messages"):format(S, P)
end

local pattern_names = {"semaphore", "errgroup", "workpool", "merge", "pubsub"}

function scenarios.patterns(notes)
  local which = pattern_names[math.random(#pattern_names)]
  local ops, what = patterns[which](notes)
  return ops, what
end

local names = {"flow", "close", "mesh", "cancel", "tree", "patterns"}
local weights = {"flow", "flow", "close", "close", "mesh", "mesh", "cancel",
                 "cancel", "tree", "patterns", "patterns"}

-- A round: one scenario, chosen and sized from rseed. Returns the calls
-- made, the scenario's name and description, its failures and its
-- events (sends refused by a close, waits canceled).
local function round(rseed, forced)
  math.randomseed(rseed)
  local name = forced or weights[math.random(#weights)]
  local notes = {}
  local ops, what, events = scenarios[name](notes)
  return ops, name, name .. " (" .. what .. ")", notes, events or 0
end

-- ==== the driver ============================================================

print(("stress: seed %d, target %d operations"):format(seed, target))
math.randomseed(seed)
local ops, failures, rounds = 0, 0, 0
local by_kind = {}  -- name -> {rounds, operations, events}
for _, name in ipairs(names) do by_kind[name] = {0, 0, 0} end
local t0 = conc.now()
local function report(r, what, note)
  failures = failures + 1
  print(("stress: FAIL round %d, %s: %s"):format(r, what, note))
end

while ops < target or rounds < #names do
  local hs, ids = {}, {}
  for i = 1, 2 do  -- two rounds at a time; the first five cover each kind
    rounds = rounds + 1
    ids[i] = rounds
    hs[i] = assert(conc.go(round, math.random(1 << 30), names[rounds]))
  end
  for i = 1, 2 do
    if not hs[i]:wait(ROUND_LIMIT) then
      report(ids[i], "?", ("did not finish in %d s"):format(ROUND_LIMIT))
      print(("stress: seed %d, %d operations, %d failures"):format(seed,
        ops, failures))
      os.exit(1)
    end
    local ok, n, name, what, notes, events = hs[i]:join()
    if not ok then
      report(ids[i], "?", "round raised: " .. tostring(n))
    else
      ops = ops + n + 2
      local k = by_kind[name]
      k[1], k[2], k[3] = k[1] + 1, k[2] + n, k[3] + events
      if verbose then print(("stress: round %d, %s"):format(ids[i], what)) end
      for _, note in ipairs(notes) do report(ids[i], what, note) end
    end
  end
end
local events = {close = "sends refused by a close",
                cancel = "waits canceled"}
for _, name in ipairs(names) do
  local k = by_kind[name]
  print(("stress: %-8s %4d rounds, %9d operations%s"):format(name, k[1],
    k[2], events[name] and (", %d %s"):format(k[3], events[name]) or ""))
end
print(("stress: %d rounds in %.1f s"):format(rounds, conc.now() - t0))
print(("stress: seed %d, %d operations, %d failures"):format(seed, ops,
  failures))
os.exit(failures == 0 and 0 or 1)
