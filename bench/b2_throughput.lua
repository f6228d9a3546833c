-- B2 throughput: a worker sends integers to the main script through a
-- channel of capacity 1024. Prints messages per second (spawn included).
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

local N = sized(1000000)
local ch = conc.chan(1024)
local t0 = conc.now()
local h = conc.go(function(c, n)
  for i = 1, n do c:send(i) end
  c:close()
  return true
end, ch, N)
local sum, count = 0, 0
for v in ch:range() do
  sum = sum + v
  count = count + 1
end
local t1 = conc.now()
local ok, err = h:join()
assert(ok, err)
assert(count == N and sum == N * (N + 1) // 2, "wrong count/sum")
print(string.format("%.0f msg/s", N / (t1 - t0)))
