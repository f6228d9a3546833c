-- B11 uncontended WaitGroup: wg:add(1); wg:done() on one conc.waitgroup()
-- from the main script, 2M pairs. Prints ns per pair beyond the Lua call
-- baseline (as B9: a loop calling math.abs twice per iteration). Each loop
-- is timed 3 times, alternating, and the fastest time of each is used; the
-- raw numbers go to stderr.
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local N = sized(2000000)
local REPS = 3
local wg = conc.waitgroup()

local function pairs_ns(n)
  local now = conc.now
  local t0 = now()
  for _ = 1, n do wg:add(1); wg:done() end
  return (now() - t0) * 1e9 / n
end

pairs_ns(math.min(N, 10000))           -- warm-up
B.call_baseline(math.min(N, 10000))
local best_wg, best_base = math.huge, math.huge
local raw = {}
for r = 1, REPS do
  local w = pairs_ns(N)
  local b = B.call_baseline(N)
  best_wg, best_base = math.min(best_wg, w), math.min(best_base, b)
  raw[r] = string.format("%.1f/%.1f", w, b)
end
assert(wg:count() == 0, "counter not zero")
assert(wg:wait(0))
io.stderr:write(string.format(
  "b11: N=%d add+done %.1f ns/pair, call baseline %.1f ns/pair (best of %d; waitgroup/baseline per rep: %s)\n",
  N, best_wg, best_base, REPS, table.concat(raw, " ")))
print(string.format("%.1f ns/pair", best_wg - best_base))
