-- bench/common.lua: what every Lua workload needs. A script loads it from
-- its own directory:
--
--   local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
--   local conc, sized = B.conc, B.sized
--
-- Paths: conc is loaded from $CONC_ROOT (bench/run sets it to a snapshot of
-- lua/ and build/), else from the repository root, the parent of this
-- file's directory.
-- Size: arg[1] is a scale factor (default 1; BENCH_QUICK=1 makes it 0.1);
-- sized(n) scales n by it (at least 1).
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local root = os.getenv("CONC_ROOT") or here .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local conc = require("conc")

local scale = tonumber(arg and arg[1]) or (os.getenv("BENCH_QUICK") == "1" and 0.1 or 1)
local function sized(n) return math.max(1, math.floor(n * scale + 0.5)) end

-- call_baseline(n): ns per iteration of a loop that calls a trivial C
-- function twice (math.abs), the Lua call overhead that B9 and B11
-- subtract from their lock/unlock and add/done pairs.
local function call_baseline(n)
  local f, now = math.abs, conc.now
  local t0 = now()
  for _ = 1, n do f(1); f(1) end
  return (now() - t0) * 1e9 / n
end

-- beyond_baseline(name, what, n, pairs_ns): times pairs_ns(n) (ns per
-- pair) and the call baseline 3 times each, alternating, after a warm-up;
-- writes the raw figures to stderr and prints the best pair time minus
-- the best baseline as "<x> ns/pair" (B9, B11).
local function beyond_baseline(name, what, n, pairs_ns)
  local reps = 3
  pairs_ns(math.min(n, 10000))
  call_baseline(math.min(n, 10000))
  local best, base, raw = math.huge, math.huge, {}
  for r = 1, reps do
    local p, b = pairs_ns(n), call_baseline(n)
    best, base = math.min(best, p), math.min(base, b)
    raw[r] = string.format("%.1f/%.1f", p, b)
  end
  io.stderr:write(string.format(
    "%s: N=%d %s %.1f ns/pair, call baseline %.1f ns/pair (best of %d; " ..
    "pair/baseline per rep: %s)\n", name, n, what, best, base, reps,
    table.concat(raw, " ")))
  print(string.format("%.1f ns/pair", best - base))
end

-- median(t): the median of a list of numbers (t is sorted in place).
local function median(t)
  table.sort(t)
  local n = #t
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

return {
  conc = conc,
  sized = sized,
  scale = scale,
  root = root,
  call_baseline = call_baseline,
  beyond_baseline = beyond_baseline,
  median = median,
}
