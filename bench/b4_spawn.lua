-- B4 spawn: start and join workers one after another, each running
-- function() return 1 end. Prints microseconds per worker (no warm-up).
-- Paths: $CONC_ROOT (bench/run sets it to a snapshot of lua/ and build/),
-- else the repository root, the parent of this script's directory.
local root = os.getenv("CONC_ROOT")
  or ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local conc = require("conc")
-- Size: arg[1] is a scale factor (default 1; BENCH_QUICK=1 makes it 0.1).
local scale = tonumber(arg and arg[1]) or (os.getenv("BENCH_QUICK") == "1" and 0.1 or 1)
local function sized(n) return math.max(1, math.floor(n * scale + 0.5)) end

local N = sized(2000)
local f = function() return 1 end
local t0 = conc.now()
for _ = 1, N do
  local ok, v = conc.go(f):join()
  if not ok or v ~= 1 then error("worker failed: " .. tostring(v)) end
end
local t1 = conc.now()
print(string.format("%.2f us/worker", (t1 - t0) * 1e6 / N))
