-- B15 contended semaphore: 8 workers share one conc.semaphore(2), each
-- doing 20,000 s:acquire(); s:release() pairs with nothing in between.
-- Prints ns per pair of the whole run (wall time / all pairs), the best
-- of 3 runs; the workers start together (a channel closed by the main
-- script) and are timed from that close to the last one's end.
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local W, N = 8, sized(20000)
local s = conc.semaphore(2)
local function run()
  local start, wg = conc.chan(), conc.waitgroup()
  for _ = 1, W do
    wg:go(function(s, start, n)
      start:recv()
      for _ = 1, n do s:acquire(); s:release() end
    end, s, start, N)
  end
  conc.sleep(0.01)  -- let them all reach start:recv()
  local t0 = conc.now()
  start:close()
  assert(wg:wait())
  return (conc.now() - t0) * 1e9 / (W * N)
end
run()
local best, raw = math.huge, {}
for r = 1, 3 do
  raw[r] = string.format("%.1f", run())
  best = math.min(best, tonumber(raw[r]))
end
assert(s:held() == 0, "weight left held")
io.stderr:write(("b15: %d workers x %d pairs: %s ns/pair\n"):format(W, N,
  table.concat(raw, " ")))
print(string.format("%.1f ns/pair", best))
