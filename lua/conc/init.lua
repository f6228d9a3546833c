--- conc: Go's concurrency for Lua 5.4.
-- The C module conc.core does the work; this file adds what reads best
-- in Lua.
local core = require("conc.core")

local conc = {}
for k, v in pairs(core) do conc[k] = v end

conc._VERSION = "conc scm"

return conc
