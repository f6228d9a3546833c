-- B9 uncontended mutex: mu:lock(); mu:unlock() on one conc.mutex() from the
-- main script, 2M pairs. Prints ns per pair beyond the Lua call baseline:
-- a loop calling a trivial C function (math.abs) twice per iteration.
-- Each loop is timed 3 times, alternating, and the fastest time of each is
-- used; the raw numbers go to stderr.
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local N = sized(2000000)
local REPS = 3
local mu = conc.mutex()

local function pairs_ns(n)
  local now = conc.now
  local t0 = now()
  for _ = 1, n do mu:lock(); mu:unlock() end
  return (now() - t0) * 1e9 / n
end

pairs_ns(math.min(N, 10000))           -- warm-up
B.call_baseline(math.min(N, 10000))
local best_mu, best_base = math.huge, math.huge
local raw = {}
for r = 1, REPS do
  local m = pairs_ns(N)
  local b = B.call_baseline(N)
  best_mu, best_base = math.min(best_mu, m), math.min(best_base, b)
  raw[r] = string.format("%.1f/%.1f", m, b)
end
assert(mu:try_lock(), "mutex left locked")
mu:unlock()
io.stderr:write(string.format(
  "b9: N=%d lock+unlock %.1f ns/pair, call baseline %.1f ns/pair (best of %d; mutex/baseline per rep: %s)\n",
  N, best_mu, best_base, REPS, table.concat(raw, " ")))
print(string.format("%.1f ns/pair", best_mu - best_base))
