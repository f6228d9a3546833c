-- B9 uncontended mutex: mu:lock(); mu:unlock() on one conc.mutex() from the
-- main script, 2M pairs. Prints ns per pair beyond the Lua call baseline:
-- a loop calling a trivial C function (math.abs) twice per iteration.
-- Each loop is timed 3 times, alternating, and the fastest time of each is
-- used; the raw numbers go to stderr.
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local mu = conc.mutex()
B.beyond_baseline("b9", "lock+unlock", sized(2000000), function(n)
  local now = conc.now
  local t0 = now()
  for _ = 1, n do mu:lock(); mu:unlock() end
  return (now() - t0) * 1e9 / n
end)
assert(mu:try_lock(), "mutex left locked")
mu:unlock()
