-- B4 spawn: start and join workers one after another, each running
-- function() return 1 end. Prints microseconds per worker (no warm-up).
-- common.lua (next to this script) loads conc and gives sized(n).
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local N = sized(2000)
local f = function() return 1 end
local t0 = conc.now()
for _ = 1, N do
  local ok, v = conc.go(f):join()
  if not ok or v ~= 1 then error("worker failed: " .. tostring(v)) end
end
local t1 = conc.now()
print(string.format("%.2f us/worker", (t1 - t0) * 1e6 / N))
