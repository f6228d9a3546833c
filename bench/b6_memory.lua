-- B6 memory: VmHWM (max RSS) with 200 workers parked on a channel receive
-- minus VmHWM before any worker, per worker. Prints KB per worker.
-- common.lua (next to this script) loads conc and gives sized(n).
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local N = sized(200)
local function status(field)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+) kB"))
end

local park, ready = conc.chan(0), conc.chan(N)
collectgarbage()
collectgarbage()
local base = status("VmHWM")
local hs = {}
for i = 1, N do
  hs[i] = conc.go(function(p, r)
    r:send(true)
    p:recv()
    return true
  end, park, ready)
end
for _ = 1, N do ready:recv() end
conc.sleep(0.2)  -- let every worker reach its receive
local with = status("VmHWM")
park:close()
for i = 1, N do assert(hs[i]:join()) end
io.stderr:write(string.format("b6: N=%d VmHWM base=%d kB parked=%d kB (VmRSS now %d kB)\n",
                              N, base, with, status("VmRSS")))
print(string.format("%.1f KB/worker", (with - base) / N))
