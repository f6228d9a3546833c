-- B11 uncontended WaitGroup: wg:add(1); wg:done() on one conc.waitgroup()
-- from the main script, 2M pairs. Prints ns per pair beyond the Lua call
-- baseline (as B9: a loop calling math.abs twice per iteration). Each loop
-- is timed 3 times, alternating, and the fastest time of each is used; the
-- raw numbers go to stderr.
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local wg = conc.waitgroup()
B.beyond_baseline("b11", "add+done", sized(2000000), function(n)
  local now = conc.now
  local t0 = now()
  for _ = 1, n do wg:add(1); wg:done() end
  return (now() - t0) * 1e9 / n
end)
assert(wg:count() == 0, "counter not zero")
assert(wg:wait(0))
