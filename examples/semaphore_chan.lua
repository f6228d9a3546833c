-- The chapter's semaphore pattern: a buffered channel as a counting
-- semaphore (Acquire sends, Release receives, TryAcquire is a select
-- with a default), and processWithLimit: a worker per item, at most
-- maxConcurrent at once. (conc.semaphore is the ready-made, weighted,
-- FIFO one: see semaphore_weighted.lua.)
local conc = require("conc")

-- type Semaphore struct { sem chan struct{} }: a plain table holding a
-- channel travels to workers, and the channel in it is shared.
local function new_semaphore(max_concurrent)
  return {sem = conc.chan(max_concurrent)}
end

local function acquire(s) s.sem:send(true) end
local function release(s) s.sem:recv() end
local function try_acquire(s) return s.sem:try_send(true) end

-- Process item: a little work, and a count of how many run at once.
local function process(item, inside, max)
  local n = inside:add(1)
  repeat
    local m = max:load()
  until n <= m or max:compare_and_swap(m, n)
  conc.sleep(0.01)
  inside:add(-1)
  print("processed " .. item)
end

local function process_with_limit(items, max_concurrent)
  local sem = new_semaphore(max_concurrent)
  local wg = conc.waitgroup()
  local inside, max = conc.atomic(), conc.atomic()
  for _, item in ipairs(items) do
    wg:add(1)
    acquire(sem)
    conc.go(function(item)
      local _ <close> = conc.defer(wg.done, wg)  -- defer wg.Done()
      local _ <close> = conc.defer(release, sem) -- defer sem.Release()
      process(item, inside, max)
    end, item)
  end
  wg:wait()
  return max:load()
end

local items = {}
for i = 1, 10 do items[i] = "item-" .. i end
local max = process_with_limit(items, 3)
print(("processed %d items, at most %d at once (limit 3)"):format(#items,
  max))

local s = new_semaphore(1)
print("TryAcquire on a free semaphore:", try_acquire(s))
print("TryAcquire on a full semaphore:", try_acquire(s))
release(s)
