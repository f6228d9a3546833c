-- B1 ping-pong: the main script and one worker pass an integer back and
-- forth over two unbuffered channels. Prints ns per round trip.
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

local N = sized(100000)
local ping, pong = conc.chan(0), conc.chan(0)
local h = conc.go(function(a, b)
  for v in a:range() do b:send(v + 1) end
  return true
end, ping, pong)

local x = 0
for _ = 1, 1000 do ping:send(x); x = pong:recv() end  -- warm-up
x = 0
local t0 = conc.now()
for _ = 1, N do
  ping:send(x)
  x = pong:recv()
end
local t1 = conc.now()
ping:close()
local ok, err = h:join()
assert(ok, err)
assert(x == N, "wrong final value " .. tostring(x))
print(string.format("%.1f ns/roundtrip", (t1 - t0) * 1e9 / N))
