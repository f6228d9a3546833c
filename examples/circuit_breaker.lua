-- The chapter's circuit breaker (failure threshold 3, success threshold
-- 2) in front of a service that is down, then recovers. The chapter
-- gives the breaker without a program; this one shows each state: 3
-- failures open it, calls are then refused without reaching the service,
-- after the timeout it is half-open and lets a probe through, and 2
-- successes close it. The breaker is a conc object: the probes run in a
-- worker and see the state main made; on_change runs in whichever worker
-- made the change.
local conc = require("conc")

-- The service: down while the shared flag says so.
local service = conc.map()
service:store("down", true)

local function call_service(svc)
  if svc:load("down") then return nil, "service unavailable" end
  return "ok"
end

local cb = conc.breaker{
  failures = 3,     -- failureThreshold
  successes = 2,    -- successThreshold
  timeout = 0.2,    -- seconds open before a probe
  on_change = function(from, to)
    print(("  state: %s -> %s (in %s)"):format(from, to,
      conc.id() == 0 and "main" or "a worker"))
  end,
}

local function execute(i)
  local v, err = cb:call(call_service, service)
  print(("request %d: %s (state %s)"):format(i, v or ("error: " .. err),
    cb:state()))
end

for i = 1, 5 do execute(i) end -- 3 failures open it; 2 are refused
print("service recovers; waiting out the timeout")
service:store("down", false)
execute(6)                     -- still open: refused
conc.sleep(0.25)
local probe = conc.go(function()
  execute(7)                   -- half-open: the probe goes through
  execute(8)                   -- the second success closes it
end)
assert(probe:join())
execute(9)
local c = cb:counts()
print(("counts since it closed: %d requests, %d successes, %d failures"):format(
  c.requests, c.successes, c.failures))
