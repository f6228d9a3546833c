-- B20: the peak RSS (MB) of B19's workload, 100,000 parked tasks.
local dir = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".")
local B = dofile(dir .. "/common.lua")
local _, kb = dofile(dir .. "/many_tasks.lua")(B.conc, B.sized(100000))
print(string.format("%.1f MB", kb / 1024))
