-- B16 limiter allow: lim:allow() on one conc.limiter (1e9 events per
-- second, burst 1000: every call is allowed, and each one reads the
-- clock, refills and takes a token) from the main script, 2M calls.
-- Prints ns per allow, the Lua method call included. Timed 3 times after
-- a warm-up; the fastest is printed, the raw numbers go to stderr.
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local N = sized(2000000)
local lim = conc.limiter(1e9, 1000)

local function run(n)
  local now, allowed = conc.now, 0
  local t0 = now()
  for _ = 1, n do
    if lim:allow() then allowed = allowed + 1 end
  end
  local ns = (now() - t0) * 1e9 / n
  assert(allowed == n, ("only %d of %d allowed"):format(allowed, n))
  return ns
end

run(math.min(N, 10000))
local best, raw = math.huge, {}
for r = 1, 3 do
  raw[r] = run(N)
  best = math.min(best, raw[r])
end
io.stderr:write(("b16: N=%d allow %.1f ns (best of 3: %.1f %.1f %.1f)\n"):format(
  N, best, raw[1], raw[2], raw[3]))
print(string.format("%.1f ns/allow", best))
