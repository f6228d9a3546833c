-- The chapter's sync.Cond queue, shared between workers. The queue's
-- items live in a buffered channel used as storage under the mutex; the
-- cond wakes a consumer when an item arrives.
local conc = require("conc")

local function new_queue()
  local mu = conc.mutex()
  return {cond = conc.cond(mu), items = conc.chan(1024)}
end

local function enqueue(q, item)
  local _ <close> = q.cond.L:guard()
  q.items:send(item)
  q.cond:signal() -- wake one waiting consumer
end

local function dequeue(q)
  local _ <close> = q.cond.L:guard()
  while #q.items == 0 do
    q.cond:wait() -- releases the lock while it waits
  end
  return (q.items:try_recv())
end

local q = new_queue()
local consumers = {}
for id = 1, 3 do
  consumers[id] = conc.go(function()
    local n = 0
    while dequeue(q) ~= "done" do n = n + 1 end
    return n
  end)
end

for i = 1, 30 do enqueue(q, "item " .. i) end
for _ = 1, 3 do enqueue(q, "done") end

local total = 0
for id, h in ipairs(consumers) do
  local _, n = assert(h:join())
  print(("consumer %d dequeued %d items"):format(id, n))
  total = total + n
end
print("total", total)
