-- B20: B19's peak RSS (MB) with 100,000 parked tasks.
local dir = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".")
arg = {[0] = dir .. "/b19_many_tasks.lua", arg[1], "rss"}
dofile(dir .. "/b19_many_tasks.lua")
