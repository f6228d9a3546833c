-- The chapter's ticker-based rate limiter: a bucket of `burst` tokens (a
-- buffered channel) that a worker refills from a ticker, one token per
-- tick, dropping the token when the bucket is full. Wait takes a token.
-- "10 requests/sec, burst of 5": the first 5 go at once, then one every
-- 100 ms. Each line shows the time as Go's time.Now() prints it: the
-- wall clock, then m=+ the seconds since the program started.
-- (conc.limiter does the same from the clock, without a worker or a
-- ticker: see rate_limiter.lua.)
local conc = require("conc")

local start = conc.now()

local function new_rate_limiter(rate, burst)
  local rl = {
    ticker = conc.ticker(1 / rate),
    tokens = conc.chan(burst),
    stop = conc.chan(),
  }
  for _ = 1, burst do rl.tokens:send(true) end -- fill the initial burst
  -- refill tokens
  rl.refill = conc.go(function(tick, tokens, stop)
    while true do
      local i = conc.select{{"recv", stop}, {"recv", tick}}
      if i == 1 then return end
      tokens:try_send(true) -- a full bucket drops it
    end
  end, rl.ticker.C, rl.tokens, rl.stop)
  return rl
end

local function wait(rl) rl.tokens:recv() end

local function stop(rl)
  rl.stop:close()
  rl.ticker:stop()
  rl.refill:join()
end

local limiter = new_rate_limiter(10, 5) -- 10 requests/sec, burst of 5
for i = 0, 19 do
  wait(limiter)
  print(("Request %d at %s m=+%.6f"):format(i,
    os.date("!%Y-%m-%d %H:%M:%S UTC"), conc.now() - start))
end
stop(limiter)
