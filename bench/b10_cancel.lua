-- B10 cancel-to-wake: 100 workers block in ctx:done():recv() (each first
-- signals readiness on a channel); the main script calls cancel() and
-- joins all 100. Prints the microseconds from cancel() until the last join
-- returned, the median of several rounds (raw rounds on stderr).
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local NW = 100
local ROUNDS = math.max(3, sized(11))
local PARK = 0.05  -- seconds between the last "ready" and cancel()

local function worker(ctx, ready)
  ready:send(true)
  ctx:done():recv()
  return ctx:err()
end

local function round()
  local ctx, cancel = conc.with_cancel(conc.background())
  local ready = conc.chan(NW)
  local hs = {}
  for i = 1, NW do hs[i] = conc.go(worker, ctx, ready) end
  for _ = 1, NW do ready:recv() end
  conc.sleep(PARK)  -- let every worker get from its send into the receive
  local t0 = conc.now()
  cancel()
  for i = 1, NW do
    local ok, err = hs[i]:join()
    if not ok or err ~= "context canceled" then error("worker " .. i .. ": " .. tostring(err)) end
  end
  return (conc.now() - t0) * 1e6
end

round()  -- warm-up: starts the pool threads
local ts = {}
for r = 1, ROUNDS do ts[r] = round() end
local raw = {}
for r = 1, ROUNDS do raw[r] = string.format("%.1f", ts[r]) end
io.stderr:write(string.format("b10: %d workers, %d rounds (us): %s\n", NW, ROUNDS, table.concat(raw, " ")))
print(string.format("%.1f us", B.median(ts)))
