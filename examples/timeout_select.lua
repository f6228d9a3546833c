-- Interview answer: a timeout with select. The chapter's select waits for
-- the result, the context's cancellation, or time.After(5 * time.Second);
-- here the timeout is 0.3 s so the example runs quickly.
local conc = require("conc")

local TIMEOUT = 0.3
local running = conc.waitgroup() -- the workers fetch starts

-- Starts work that takes `seconds`, then waits as the chapter's select
-- does. Returns result, nil or nil, err. The work gets a context that
-- ends when fetch returns, so a worker nobody waits for stops early.
local function fetch(ctx, seconds)
  local work_ctx, stop <close> = conc.with_cancel(ctx)
  local result_ch = conc.chan(1) -- room for a result nobody reads
  running:add(1)
  conc.go(function()
    if conc.sleep(seconds, work_ctx) then
      result_ch:send(("done in %.1fs"):format(seconds))
    end
    running:done()
  end)
  local i, v = conc.select{
    {"recv", result_ch},
    {"recv", ctx:done()},
    {"recv", conc.after(TIMEOUT)},
  }
  if i == 1 then return v, nil end
  if i == 2 then return nil, ctx:err() end
  return nil, "timeout"
end

local function show(name, v, err)
  print(("%-9s result=%s err=%s"):format(name, tostring(v), tostring(err)))
end

show("fast:", fetch(conc.background(), 0.1))
show("slow:", fetch(conc.background(), 1))
local ctx, cancel = conc.with_cancel(conc.background())
conc.go(function() conc.sleep(0.05) cancel() end)
show("canceled:", fetch(ctx, 1))
running:wait()
