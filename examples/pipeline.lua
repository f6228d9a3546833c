-- The chapter's pipeline: generate -> square -> filterEven, each stage a
-- worker joined to the next by an unbuffered channel. conc.stage is
-- square's and filterEven's "go func() { for n := range in { ... } }"
-- (a nil result passes nothing on: the filter).
local conc = require("conc")

-- Stage 1: generate numbers
local function generate(...)
  local out = conc.chan()
  conc.go(function(out, ...)
    for _, n in ipairs({...}) do out:send(n) end
    out:close()
  end, out, ...)
  return out
end

-- Build pipeline: generate -> square -> filter
local nums = generate(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
local squared = conc.stage(nums, function(n) return n * n end)
local evens = conc.stage(squared, function(n)
  if n % 2 == 0 then return n end
end)

-- Consume
for n in evens:range() do
  print(n) -- 4, 16, 36, 64, 100
end
