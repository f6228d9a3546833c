-- Interview answer: sync.Map or a map under a RWMutex? Timed side by
-- side, with WORKERS workers each doing OPS operations on KEYS keys:
--   conc.map            read by every worker directly (Go's sync.Map);
--   owner + channels    one worker owns a plain table and serves reads
--                       and writes sent to it over a channel;
--   conc.rwmutex + map  a conc.map behind a conc.rwmutex (the chapter's
--                       "regular map with sync.RWMutex" answer).
-- Two mixes: read-mostly (1% writes: keys written once, read many
-- times, sync.Map's case) and write-heavy (50% writes).
local conc = require("conc")

local WORKERS, OPS, KEYS = 4, 20000, 64

-- Each variant: setup() -> shared state; worker(state, id, writes_per_100)
-- -> reads that found their key; teardown(state).
local variants = {}

variants[1] = {name = "conc.map", setup = function()
  local m = conc.map()
  for k = 1, KEYS do m:store(k, 0) end
  return m
end, worker = function(m, id, pct, ops, keys)
  local found = 0
  for i = 1, ops do
    local k = (i * 7 + id) % keys + 1
    if i % 100 < pct then m:store(k, i)
    elseif m:load(k) then found = found + 1 end
  end
  return found
end}

variants[2] = {name = "owner + channels", setup = function()
  local requests = conc.chan(64)
  local owner = conc.go(function(reqs, keys)
    local t = {} -- a plain table: only this worker touches it
    for k = 1, keys do t[k] = 0 end
    for r in reqs:range() do
      if r[1] == "store" then t[r[2]] = r[3] else r[4]:send(t[r[2]]) end
    end
  end, requests, KEYS)
  return {requests = requests, owner = owner}
end, worker = function(s, id, pct, ops, keys)
  local reply, found = conc.chan(1), 0
  for i = 1, ops do
    local k = (i * 7 + id) % keys + 1
    if i % 100 < pct then s.requests:send({"store", k, i})
    else
      s.requests:send({"load", k, nil, reply})
      if reply:recv() then found = found + 1 end
    end
  end
  return found
end, teardown = function(s)
  s.requests:close()
  assert(s.owner:join())
end}

variants[3] = {name = "conc.rwmutex + map", setup = function()
  local m = conc.map()
  for k = 1, KEYS do m:store(k, 0) end
  return {m = m, rw = conc.rwmutex()}
end, worker = function(s, id, pct, ops, keys)
  local found = 0
  for i = 1, ops do
    local k = (i * 7 + id) % keys + 1
    if i % 100 < pct then
      s.rw:lock()
      s.m:store(k, i)
      s.rw:unlock()
    else
      s.rw:rlock()
      if s.m:load(k) then found = found + 1 end
      s.rw:runlock()
    end
  end
  return found
end}

-- Runs one variant with pct writes per 100 ops; returns seconds and
-- whether every read found its key.
local function run(v, pct)
  local state = v.setup()
  local start, ready = conc.chan(), conc.waitgroup()
  local hs = {}
  for id = 1, WORKERS do
    ready:add(1)
    hs[id] = conc.go(function(work, go, ...)
      ready:done()
      go:recv() -- all start together: spawning is not timed
      return work(...)
    end, v.worker, start, state, id, pct, OPS, KEYS)
  end
  ready:wait()
  local t0 = conc.now()
  start:close()
  local found = 0
  for _, h in ipairs(hs) do
    local ok, n = h:join()
    assert(ok, n)
    found = found + n
  end
  local elapsed = conc.now() - t0
  if v.teardown then v.teardown(state) end
  local writes = WORKERS * (OPS // 100 * pct)
  return elapsed, found == WORKERS * OPS - writes
end

for _, mix in ipairs{{"read-mostly", 1}, {"write-heavy", 50}} do
  print(("%s (%d%% writes), %d workers x %d ops:"):format(mix[1], mix[2],
                                                          WORKERS, OPS))
  for _, v in ipairs(variants) do
    local s, ok = run(v, mix[2])
    print(("  %-20s %8.3f s  %9.0f ops/s  %s"):format(v.name, s,
          WORKERS * OPS / s, ok and "ok" or "WRONG"))
  end
end
print("sync.Map (conc.map) for keys written once and read many times, "
      .. "or disjoint keys;")
print("a map under a RWMutex for general use; a channel owner when the "
      .. "state needs a single writer.")
