-- B8 select over 4 channels (capacity 1) with one ready; the ready one is
-- refilled after each select. Prints ns per select (refill included).
-- common.lua (next to this script) loads conc and gives sized(n).
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

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
