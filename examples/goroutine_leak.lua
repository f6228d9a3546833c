-- The chapter's goroutine leak, found and fixed. A caller gives up on a
-- slow worker after a timeout; the worker then blocks forever sending
-- its result on an unbuffered channel nobody reads: a leak. conc.workers()
-- shows where it is stuck. The fix gives the worker a context (and a
-- buffered channel), so it can always finish.
local conc = require("conc")

local function leaky_fetch()
  local result = conc.chan() -- unbuffered: the send waits for a reader
  conc.go(function()
    conc.sleep(0.05) -- slow work
    result:send("data") -- blocks forever once the caller has gone
  end)
  local i, v = conc.select{{"recv", result}, timeout = 0.01}
  return i == 1 and v or nil, "timeout"
end

local function fixed_fetch()
  local ctx, cancel <close> = conc.with_timeout(conc.background(), 0.01)
  local result = conc.chan(1) -- room for the answer: the send never waits
  conc.go(function()
    conc.sleep(0.05, ctx) -- returns early once ctx is canceled
    result:send("data", ctx)
  end)
  local i, v = conc.select{{"recv", result}, {"recv", ctx:done()}}
  return i == 1 and v or nil, ctx:err()
end

local function blocked_workers()
  local n, where
  local t0 = conc.now()
  repeat
    n = 0
    for _, w in ipairs(conc.workers()) do
      if w.id ~= 0 and w.state == "blocked" then
        n, where = n + 1, w.waiting_in .. " at " .. (w.where or "?")
      end
    end
  until n > 0 or conc.now() - t0 > 0.5
  return n, where
end

print("leaky:", leaky_fetch())
local n, where = blocked_workers()
print(("leaked workers: %d (%s)"):format(n, where))

print("fixed:", fixed_fetch())
conc.sleep(0.1) -- the fixed worker finishes on its own
local leaked = 0
for _, w in ipairs(conc.workers()) do
  if w.id ~= 0 then leaked = leaked + 1 end
end
print("workers left besides the leaked one:", leaked - 1)
