-- B7 parallel speed-up: 16 CPU-bound jobs (2M iterations of integer
-- arithmetic each) taken from a channel by 1 worker, then by 2 workers,
-- three times in turn. Prints the best time with 1 worker over the best
-- with 2: a single run of ~0.2 s here often catches the VM slowing a
-- whole run down, which read as speed-ups of 1.4x or 2.6x (the Go twin
-- does the same).
-- common.lua (next to this script) loads conc and gives sized(n).
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local ITER = sized(2000000)
local JOBS = 16

local function run(nw)
  local jobs, results = conc.chan(JOBS), conc.chan(JOBS)
  for _ = 1, JOBS do jobs:send(ITER) end
  jobs:close()
  local t0 = conc.now()
  local hs = {}
  for k = 1, nw do
    hs[k] = conc.go(function(j, r)
      for n in j:range() do
        local x = 0
        for i = 1, n do x = (x * 1103515245 + 12345 + i) & 0x7fffffff end
        r:send(x)
      end
      return true
    end, jobs, results)
  end
  local first
  for _ = 1, JOBS do
    local x = results:recv()
    first = first or x
    assert(x == first, "jobs disagree")
  end
  local t = conc.now() - t0
  for k = 1, nw do assert(hs[k]:join()) end
  return t, first
end

local t1, t2, x1, x2 = math.huge, math.huge, nil, nil
for _ = 1, 3 do
  local t, x = run(1)
  t1, x1 = math.min(t1, t), x
  t, x = run(2)
  t2, x2 = math.min(t2, t), x
end
assert(x1 == x2)
io.stderr:write(string.format("b7: 1 worker %.3f s, 2 workers %.3f s (checksum %d)\n", t1, t2, x1))
print(string.format("%.2f x", t1 / t2))
