-- B1 ping-pong: the main script and one worker pass an integer back and
-- forth over two unbuffered channels. Prints ns per round trip.
-- common.lua (next to this script) loads conc and gives sized(n).
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

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
