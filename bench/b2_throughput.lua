-- B2 throughput: a worker sends integers to the main script through a
-- channel of capacity 1024. Prints messages per second (spawn included).
-- common.lua (next to this script) loads conc and gives sized(n).
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

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
