-- B17 publish to 100 subscribers: ps:publish("t", "payload") on a
-- conc.pubsub with 100 subscribers of topic "t" (capacity 100 each, the
-- chapter's). Publishes go in batches of 64, timed; after each batch the
-- subscribers' channels are drained, untimed, so that no publish is a
-- drop. Prints ns per publish (all 100 deliveries included).
local B = dofile(((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/common.lua")
local conc, sized = B.conc, B.sized

local SUBS, BATCH = 100, 64
local ps = conc.pubsub()
local subs = {}
for i = 1, SUBS do subs[i] = ps:subscribe("sub" .. i, {"t"}) end

local function drain()
  for i = 1, SUBS do
    local ch = subs[i]
    while ch:try_recv() do end
  end
end

local function run(batches)
  local now, publish = conc.now, ps.publish
  local spent = 0
  for _ = 1, batches do
    local t0 = now()
    for _ = 1, BATCH do
      if publish(ps, "t", "payload") ~= SUBS then error("a drop") end
    end
    spent = spent + (now() - t0)
    drain()
  end
  return spent * 1e9 / (batches * BATCH)
end

run(20) -- warm-up
local best = math.huge
for _ = 1, 3 do best = math.min(best, run(sized(150))) end
print(string.format("%.1f ns/publish", best))
