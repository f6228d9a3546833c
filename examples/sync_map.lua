-- The chapter's sync.Map: getOrCompute, a cache shared by every worker.
-- Two workers may both miss a key and compute it (as in Go); LoadOrStore
-- keeps the first value stored and every caller gets that one.
local conc = require("conc")

local cache = conc.map()

local function get_or_compute(key, compute)
  local val, ok = cache:load(key)
  if ok then return val end
  val = compute()
  local actual = cache:load_or_store(key, val)
  return actual
end

local keys = {"config", "user:1", "user:2"}
local results = conc.chan(64)
local wg = conc.waitgroup()
for id = 1, 8 do
  wg:add(1)
  conc.go(function()
    for _, key in ipairs(keys) do
      local v = get_or_compute(key, function()
        conc.sleep(0.01) -- an expensive computation
        return ("%s (computed by worker %d)"):format(key, id)
      end)
      results:send({key = key, value = v})
    end
    wg:done()
  end)
end
wg:wait()
results:close()

-- Every worker got the same value for a key: the one stored first.
local same, n = true, 0
for r in results:range() do
  n = n + 1
  if r.value ~= cache:load(r.key) then same = false end
end
for _, key in ipairs(keys) do
  print(("%s -> %s"):format(key, cache:load(key)))
end
print(("%d lookups, %d keys cached"):format(n, #cache))
print("every worker got the stored value: " .. tostring(same))
