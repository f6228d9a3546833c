-- B12 conc.map read scaling: workers call m:load on the same 100 keys, 2M
-- loads each; total loads/s with 2 workers in parallel divided by total
-- loads/s with 1 worker. Prints that ratio (raw rates on stderr). The
-- workers wait at a start channel, so spawning is not timed.
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local N = sized(2000000)   -- loads per worker
local NKEYS = 100
local m = conc.map()
for i = 1, NKEYS do m:store("key" .. i, i) end

local function reader(map, n, nkeys, ready, start)
  local keys = {}
  for i = 1, nkeys do keys[i] = "key" .. i end
  ready:send(true)
  start:recv()
  local sum, k = 0, 1
  for _ = 1, n do
    local v, ok = map:load(keys[k])
    if not ok then error("key " .. keys[k] .. " missing") end
    sum = sum + v
    k = k + 1
    if k > nkeys then k = 1 end
  end
  return sum
end

-- expected sum of n loads cycling over values 1..nkeys
local function expect(n)
  local full, rest = n // NKEYS, n % NKEYS
  return full * NKEYS * (NKEYS + 1) // 2 + rest * (rest + 1) // 2
end

local function run(nw, n)
  local ready, start = conc.chan(nw), conc.chan(0)
  local hs = {}
  for w = 1, nw do hs[w] = conc.go(reader, m, n, NKEYS, ready, start) end
  for _ = 1, nw do ready:recv() end
  local t0 = conc.now()
  start:close()
  for w = 1, nw do
    local ok, sum = hs[w]:join()
    if not ok then error(sum) end
    assert(sum == expect(n), "wrong sum")
  end
  local t = conc.now() - t0
  return nw * n / t, t
end

run(2, math.min(N, 20000))  -- warm-up: starts the pool threads
local r1, t1 = run(1, N)
local r2, t2 = run(2, N)
io.stderr:write(string.format("b12: N=%d loads/worker; 1 worker %.0f loads/s (%.3f s), " ..
                              "2 workers %.0f loads/s (%.3f s)\n",
                              N, r1, t1, r2, t2))
print(string.format("%.2f x", r2 / r1))
