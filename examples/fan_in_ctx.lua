-- The chapter's generic FanIn(ctx, channels...): conc.merge with a
-- context. Every value arrives once; when ctx ends, the merged channel
-- closes although its inputs are still open.
local conc = require("conc")

local function producer(name, n, delay)
  local ch = conc.chan()
  conc.go(function(ch, name, n, delay)
    for i = 1, n do
      conc.sleep(delay)
      ch:send(("%s-%d"):format(name, i))
    end
    ch:close()
  end, ch, name, n, delay)
  return ch
end

-- Every input finishes: the merged channel closes after the last value.
local ctx, cancel = conc.with_cancel(conc.background())
local count = 0
local inputs = {producer("a", 3, 0.001), producer("b", 3, 0.001)}
for _ in conc.merge(inputs, ctx):range() do
  count = count + 1
end
print("received", count)
cancel()

-- A producer that never stops: a deadline ends the fan-in.
local tctx, tcancel = conc.with_timeout(conc.background(), 0.1)
local ticks = conc.chan()
local stop = conc.chan()
conc.go(function(ticks, stop)
  while conc.select{{"send", ticks, "tick"}, {"recv", stop}} == 1 do
    conc.sleep(0.01)
  end
end, ticks, stop)
local n = 0
for _ in conc.merge({ticks}, tctx):range() do n = n + 1 end
print("closed by the context:", tctx:err())
print("got some ticks:", n > 0)
stop:close()
tcancel()
