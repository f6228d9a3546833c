-- B19 many tasks: 100,000 tasks parked on a channel receive at once,
-- then all released (the channel closed) and joined. Prints the seconds
-- from the first spawn to the last join; with "rss" as its second
-- argument (B20) the peak RSS of the process in MB instead.
-- common.lua (next to this script) loads conc and gives sized(n).
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local N = sized(100000)
local function status(field)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+) kB"))
end

local park, ready = conc.chan(), conc.chan(N)
local t0 = conc.now()
local hs = {}
for i = 1, N do
  hs[i] = conc.go(function(p, r, i)
    r:send(true)
    p:recv()
    return i
  end, park, ready, i)
end
for _ = 1, N do ready:recv() end  -- every task has run up to its receive
park:close()
local sum = 0
for i = 1, N do
  local ok, v = hs[i]:join()
  if not ok then error("task failed: " .. tostring(v)) end
  sum = sum + v
end
local t = conc.now() - t0
assert(sum == N * (N + 1) // 2)
io.stderr:write(string.format("b19: N=%d %.3f s, VmHWM %d kB\n", N, t,
                              status("VmHWM")))
if arg[2] == "rss" then
  print(string.format("%.1f MB", status("VmHWM") / 1024))
else
  print(string.format("%.3f s", t))
end
