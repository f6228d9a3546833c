-- The chapter's PubSub: sub1 follows orders and payments, sub2 orders.
-- conc.pubsub is shared by every worker that holds it; publish never
-- blocks (a full subscriber misses the message, ps:dropped counts it).
local conc = require("conc")

local ps = conc.pubsub()
local wg = conc.waitgroup()

-- Subscriber 1
local ch1 = ps:subscribe("sub1", {"orders", "payments"})
wg:add(1)
conc.go(function(ch1, wg)
  for msg in ch1:range() do
    print(string.format("Sub1 received: %s - %s", msg.topic, msg.payload))
  end
  wg:done()
end, ch1, wg)

-- Subscriber 2
local ch2 = ps:subscribe("sub2", {"orders"})
wg:add(1)
conc.go(function(ch2, wg)
  for msg in ch2:range() do
    print(string.format("Sub2 received: %s - %s", msg.topic, msg.payload))
  end
  wg:done()
end, ch2, wg)

-- Publish messages
ps:publish("orders", "Order #123")
ps:publish("payments", "Payment received")

-- Go's main returns at once and may print nothing; here the subscribers
-- drain, then unsubscribe closes their channels and they end.
ps:unsubscribe("sub1")
ps:unsubscribe("sub2")
wg:wait()
