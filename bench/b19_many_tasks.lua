-- B19 many tasks: 100,000 tasks parked on a channel receive at once,
-- then all released and joined (many_tasks.lua). Prints the seconds
-- from the first spawn to the last join.
local dir = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".")
local B = dofile(dir .. "/common.lua")
local t = dofile(dir .. "/many_tasks.lua")(B.conc, B.sized(100000))
print(string.format("%.3f s", t))
