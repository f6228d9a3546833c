-- The chapter's fan-out / fan-in: several workers read the same input
-- channel until it is closed (fan-out), each squaring into a channel of
-- its own; conc.merge multiplexes those onto one channel (fan-in), in C,
-- with no forwarding worker per input.
local conc = require("conc")

-- Fan-out: distribute work across multiple workers
local function worker(input)
  return conc.stage(input, function(n) return n * n end)
end

local function fan_out(input, num_workers)
  local outputs = {}
  for i = 1, num_workers do outputs[i] = worker(input) end
  return outputs
end

local input = conc.chan()
conc.go(function(out)
  for n = 1, 10 do out:send(n) end
  out:close()
end, input)

-- Fan-in: merge multiple channels into one
local merged = conc.merge(fan_out(input, 3))
local results = {}
for n in merged:range() do results[#results + 1] = n end
table.sort(results) -- arrival order is the workers' race, as in Go
print(table.concat(results, " "))
