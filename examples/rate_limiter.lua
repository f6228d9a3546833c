-- The chapter's golang.org/x/time/rate program: 10 events per second,
-- burst of 5, 20 requests, each waiting for its token. conc.limiter is
-- the token bucket computed from the clock (no worker, no ticker), shared
-- by every worker that holds it. Go prints only "Request i"; the time of
-- each request (seconds since the first) is printed after it, to show
-- the burst and then the pace.
local conc = require("conc")

local limiter = conc.limiter(10, 5) -- 10 events per second, burst of 5
local ctx = conc.background()
local start = conc.now()
for i = 0, 19 do
  -- block until allowed
  local ok, err = limiter:wait(ctx)
  if not ok then error(err) end
  print(("Request %d\t(+%.2fs)"):format(i, conc.now() - start))
end
