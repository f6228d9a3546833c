-- The chapter's x/sync/semaphore program, processWithSemaphore: a
-- weighted semaphore bounds how many items are processed at once, an
-- errgroup runs them and returns the first error, whose context stops
-- the loop from starting more. Run once with good items, once with a
-- bad one. Then the weights: a request of 3 is not starved by a stream
-- of requests of 1 (FIFO).
local conc = require("conc")

-- process(item): fails for an item named "bad".
local function process(item, inside, max)
  local n = inside:add(1)
  repeat
    local m = max:load()
  until n <= m or max:compare_and_swap(m, n)
  conc.sleep(0.01)
  inside:add(-1)
  if item == "bad" then return nil, "processing bad: invalid item" end
  return true
end

local function process_with_semaphore(ctx, items, max_concurrent)
  local sem = conc.semaphore(max_concurrent)
  local g, gctx = conc.errgroup(ctx)
  local inside, max = conc.atomic(), conc.atomic()
  for _, item in ipairs(items) do
    local ok, err = sem:acquire(1, gctx)
    if not ok then  -- Go returns ctx's error here; we also let the
      local _, cause = g:wait()  -- started ones finish and show the cause
      return nil, err, max:load(), cause
    end
    g:go(function(item)
      local _ <close> = conc.defer(sem.release, sem, 1)
      return process(item, inside, max)
    end, item)
  end
  local ok, err = g:wait()
  return ok, err, max:load()
end

local function show(ok, err, cause)
  if ok then return "<nil>" end
  if cause then return ("%s (cause: %s)"):format(err, cause) end
  return tostring(err)
end

local items = {}
for i = 1, 12 do items[i] = "item-" .. i end
local ok, err, max = process_with_semaphore(conc.background(), items, 4)
print(("processWithSemaphore(12 items, 4): %s (at most %d at once)")
  :format(show(ok, err), max))

items[3] = "bad"
local cause
ok, err, max, cause = process_with_semaphore(conc.background(), items, 4)
assert(max <= 4, "the semaphore let more than 4 in")
print("processWithSemaphore(with a bad item): " .. show(ok, err, cause))

-- Weights: a writer needs the whole semaphore (3), readers need 1.
local s = conc.semaphore(3)
local order = conc.chan(10)
s:acquire(1)                               -- a reader holds 1
local wg = conc.waitgroup()
wg:go(function() s:acquire(3); order:send("writer (3)"); s:release(3) end)
while s:try_acquire(1) do s:release(1); conc.sleep(0.001) end  -- queued
for i = 1, 3 do
  wg:go(function(i) s:acquire(1); order:send("reader " .. i); s:release(1) end,
    i)
  conc.sleep(0.005)  -- the readers queue behind the writer, in turn
end
s:release(1)
wg:wait()
order:close()
local got = {}
for v in order:range() do got[#got + 1] = v end
-- The writer first: the readers queued behind it though a unit was free.
-- Its release grants all three readers at once (in their queue order),
-- and they then run in any order: sorted here.
assert(got[1] == "writer (3)", "a reader overtook the writer: " .. got[1])
local readers = {table.unpack(got, 2)}
table.sort(readers)
print(("granted in order: writer (3), then together: %s")
  :format(table.concat(readers, ", ")))
