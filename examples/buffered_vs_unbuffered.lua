-- Interview answer: buffered vs unbuffered channels, timed.
-- Unbuffered: synchronous, the sender blocks until a receiver takes the
-- value. Buffered: asynchronous up to its capacity; the sender blocks
-- only when the buffer is full.
local conc = require("conc")

local DELAY = 0.2 -- the receiver is busy this long before each receive

-- Sends n values on ch to a slow receiver; returns when each send
-- returned, in seconds since the start.
local function timed_sends(ch, n)
  local done = conc.chan()
  conc.go(function()
    for _ = 1, n do
      conc.sleep(DELAY)
      ch:recv()
    end
    done:close()
  end)
  local t0, times = conc.now(), {}
  for i = 1, n do
    ch:send(i)
    times[i] = conc.now() - t0
  end
  done:recv()
  return times
end

local function show(name, times)
  local parts = {}
  for i, t in ipairs(times) do
    parts[i] = ("send %d after %.1fs"):format(i, t)
  end
  print(name .. ": " .. table.concat(parts, ", "))
end

show("unbuffered", timed_sends(conc.chan(), 3))
show("buffered(2)", timed_sends(conc.chan(2), 3))
print("unbuffered: each send waits for the receiver (synchronization)")
print("buffered: sends return at once until the buffer is full "
      .. "(decoupling)")
