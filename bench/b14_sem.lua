-- B14 uncontended semaphore: s:acquire(); s:release() on one
-- conc.semaphore(1) from the main script, 2M pairs. Prints ns per pair
-- beyond the Lua call baseline (as B9: a loop calling math.abs twice per
-- iteration); each loop is timed 3 times, alternating, the fastest kept.
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local s = conc.semaphore(1)
B.beyond_baseline("b14", "acquire+release", sized(2000000), function(n)
  local now = conc.now
  local t0 = now()
  for _ = 1, n do s:acquire(); s:release() end
  return (now() - t0) * 1e9 / n
end)
assert(s:held() == 0, "weight left held")
