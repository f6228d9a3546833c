-- B18 merge of 8 channels: 8 producer workers each send N/8 integers on
-- an input channel of their own (capacity 128) and close it; the main
-- script receives everything from conc.merge(inputs) until it closes.
-- Prints ns per value received (3 runs, the best).
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local K = 8

local function run(n)
  local per = n // K
  local ins = {}
  for i = 1, K do ins[i] = conc.chan(128) end
  local merged = conc.merge(ins)
  local start = conc.chan()
  for i = 1, K do
    conc.go(function(ch, per, start)
      start:recv()
      for v = 1, per do ch:send(v) end
      ch:close()
    end, ins[i], per, start)
  end
  local t0 = conc.now()
  start:close()
  local got, recv = 0, merged.recv
  while true do
    local v = recv(merged)
    if v == nil then break end
    got = got + 1
  end
  local t1 = conc.now()
  assert(got == per * K, "lost values")
  return (t1 - t0) * 1e9 / got
end

run(sized(8000)) -- warm-up (pool threads)
local best = math.huge
for _ = 1, 3 do best = math.min(best, run(sized(400000))) end
print(string.format("%.1f ns/value", best))
