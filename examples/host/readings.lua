-- examples/host/readings.lua: run by the example host (host.c), which
-- passes two conc channels: `readings`, fed by the host's own C thread
-- with lines "seq:degrees" until it closes it, and `produced`, on which
-- it then sends how many readings it made. A pool of workers calibrates
-- each reading with host.calib, a C module the host registered in every
-- worker's state (conc_lua_set_state_init): no .so of it exists.
-- Returns produced, consumed, missing and duplicated counts.
local conc = require("conc")
local readings, produced = ...

local pool = conc.workpool(4, function(line)
  local calib = require("host.calib")
  local seq, raw = line:match("^(%d+):(%-?[%d.]+)$")
  assert(seq, "a malformed reading: " .. line)
  return {seq = tonumber(seq), value = calib.adjust(tonumber(raw)),
          worker = conc.id()}
end)

-- A worker moves the readings into the pool, then closes it: the pool's
-- results channel closes once the last job is done.
local feeder = conc.go(function(input, p)
  for line in input:range() do assert(p:submit(line)) end
  p:close()
end, readings, pool)

local seen, consumed, duplicated = {}, 0, 0
local workers, nworkers = {}, 0
for r in pool:results():range() do
  assert(r.ok, r.err)
  if not workers[r.value.worker] then
    workers[r.value.worker] = true
    nworkers = nworkers + 1
  end
  local seq = r.value.seq
  if seen[seq] then
    duplicated = duplicated + 1
  else
    seen[seq] = true
    consumed = consumed + 1
  end
end
assert(feeder:join())

local total = produced:recv()
local missing = 0
for seq = 1, total do
  if not seen[seq] then missing = missing + 1 end
end
print(("readings: %d calibrated by %d of the pool's 4 workers")
  :format(consumed, nworkers))
return total, consumed, missing, duplicated
