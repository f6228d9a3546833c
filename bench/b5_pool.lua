-- B5 pool: a sender worker puts jobs on a jobs channel (cap 1024); 4 workers
-- send x*x on a results channel (cap 1024); the main script sums the
-- results. Prints jobs per second (spawns included).
-- common.lua (next to this script) loads conc and gives sized(n).
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local N = sized(200000)
local NW = 4
local jobs, results = conc.chan(1024), conc.chan(1024)
local t0 = conc.now()
local sender = conc.go(function(j, n)
  for i = 1, n do j:send(i) end
  j:close()
  return true
end, jobs, N)
local ws = {}
for k = 1, NW do
  ws[k] = conc.go(function(j, r)
    for x in j:range() do r:send(x * x) end
    return true
  end, jobs, results)
end
local sum = 0
for _ = 1, N do sum = sum + results:recv() end
local t1 = conc.now()
assert(sender:join())
for k = 1, NW do assert(ws[k]:join()) end
assert(sum == N * (N + 1) * (2 * N + 1) // 6, "wrong sum")
print(string.format("%.0f jobs/s", N / (t1 - t0)))
