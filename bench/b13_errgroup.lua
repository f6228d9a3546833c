-- B13 errgroup: one conc.errgroup runs 1,000 tiny functions (each adds 1
-- to a conc.atomic and returns nothing), then wait. Prints microseconds
-- per function (the best of 5 rounds of 1,000; the first round warms the
-- worker pool up and is not counted).
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local N = sized(1000)
local count = conc.atomic()
local function round()
  local g = conc.errgroup()
  local t0 = conc.now()
  for _ = 1, N do g:go(function(c) c:add(1) end, count) end
  assert(g:wait())
  return (conc.now() - t0) * 1e6 / N
end
round()
local best, raw = math.huge, {}
for r = 1, 5 do
  raw[r] = round()
  best = math.min(best, raw[r])
end
assert(count:load() == 6 * N, "a function ran more or less than once")
io.stderr:write(string.format("b13: N=%d per round: %s us/function\n", N,
  table.concat((function()
    local t = {}
    for i, v in ipairs(raw) do t[i] = string.format("%.2f", v) end
    return t
  end)(), " ")))
print(string.format("%.2f us/function", best))
