-- B21 select traffic beside a busy poller: a producer task sends N values
-- to a consumer task through select (the consumer also selects on a quit
-- channel), first alone, then while a third task polls an empty channel
-- with select and a default case in a loop. Prints the second time over
-- the first (1.00x: the poller costs the pair nothing; the issue's bound
-- is 2x on 2 cores). Raw times on stderr.
-- common.lua (next to this script) loads conc and gives sized(n).
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local N = sized(100000)

local function pair(n)
  local c, quit = conc.chan(), conc.chan()
  local t0 = conc.now()
  local consumer = conc.go(function(c, quit, n)
    local sum = 0
    for _ = 1, n do
      local k, v = conc.select({{"recv", c}, {"recv", quit}})
      if k ~= 1 then error("quit before the end") end
      sum = sum + v
    end
    return sum
  end, c, quit, n)
  local producer = conc.go(function(c, n)
    for i = 1, n do conc.select({{"send", c, i}}) end
  end, c, n)
  assert(producer:join())
  local ok, sum = consumer:join()
  assert(ok and sum == n * (n + 1) // 2, "values lost or repeated")
  return conc.now() - t0
end

local function poller(stop)
  local polls = 0
  local idle = conc.chan()
  while true do
    local k = conc.select({{"recv", idle}, {"recv", stop}, default = true})
    if k == 2 then return polls end
    polls = polls + 1
  end
end

pair(sized(10000))  -- warm-up
local alone = pair(N)
local stop = conc.chan()
local p = conc.go(poller, stop)
local beside = pair(N)
stop:close()
local ok, polls = p:join()
assert(ok and polls > 0, "the poller did not run")
io.stderr:write(string.format("b21: N=%d alone %.3f s, beside the poller %.3f s (%d polls)\n",
                              N, alone, beside, polls))
print(string.format("%.2f x", beside / alone))
