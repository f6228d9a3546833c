-- B8 select over 4 channels (capacity 1) with one ready; the ready one is
-- refilled after each select. Prints ns per select (refill included).
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

local N = sized(500000)
local c = {conc.chan(1), conc.chan(1), conc.chan(1), conc.chan(1)}
local cases = {{"recv", c[1]}, {"recv", c[2]}, {"recv", c[3]}, {"recv", c[4]}}
local select, ready = conc.select, c[3]
ready:send(0)
for _ = 1, 1000 do local _, v = select(cases); ready:send(v) end  -- warm-up
local t0 = conc.now()
for _ = 1, N do
  local k, v = select(cases)
  if k ~= 3 then error("case " .. tostring(k) .. " chosen") end
  ready:send(v + 1)
end
local t1 = conc.now()
assert(ready:recv() == N)
print(string.format("%.1f ns/select", (t1 - t0) * 1e9 / N))
