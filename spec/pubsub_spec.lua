local conc = require("conc")
local support = require("support")

describe("conc.pubsub", function()
  it("delivers {topic, payload} to the subscribers of the topic", function()
    local ps = conc.pubsub()
    local c1 = ps:subscribe("sub1", {"orders", "payments"})
    local c2 = ps:subscribe("sub2", "orders")
    assert.are.equal(2, ps:publish("orders", {id = 123, items = {"a"}}))
    assert.are.equal(1, ps:publish("payments", "Payment received"))
    assert.are.equal(0, ps:publish("shipping", "nobody"))
    local m = c1:recv()
    assert.are.same({topic = "orders", payload = {id = 123, items = {"a"}}}, m)
    assert.are.same({topic = "payments", payload = "Payment received"},
      c1:recv())
    assert.are.equal("orders", c2:recv().topic)
    assert.are.equal(0, c2:len())
    assert.are.equal(2, #ps)
  end)

  it("never blocks: a full subscriber misses messages and counts them",
    function()
    local ps = conc.pubsub()
    local c = ps:subscribe("slow", {"t"}, 2)
    local reached = 0
    for i = 1, 5 do reached = reached + ps:publish("t", i) end
    assert.are.equal(2, reached)
    assert.are.equal(3, ps:dropped("slow"))
    assert.is_nil(ps:dropped("nobody"))
    assert.are.equal(1, c:recv().payload)
  end)

  it("unsubscribe closes the channel; resubscribing an id replaces it",
    function()
    local ps = conc.pubsub()
    local old = ps:subscribe("a", "t")
    local new = ps:subscribe("a", "t")
    assert.are.same({nil, false}, {old:recv()})
    ps:publish("t", 1)
    assert.is_true(ps:unsubscribe("a"))
    assert.is_false(ps:unsubscribe("a"))
    assert.are.equal(1, new:recv().payload)
    assert.are.same({nil, false}, {new:recv()})
    assert.are.equal(0, #ps)
  end)

  it("subscriber channels are receive-only", function()
    local ps = conc.pubsub()
    local c = ps:subscribe("a", "t")
    assert.has_error(function() c:send(1) end,
      "conc.chan:send: send on receive-only channel")
    assert.has_error(function() c:close() end,
      "conc.chan:close: close of receive-only channel")
  end)

  it("refuses bad arguments", function()
    local ps = conc.pubsub()
    assert.has_error(function() ps:subscribe("a", {1}) end,
      "conc.pubsub:subscribe: topic #1 is a number, not a string")
    assert.has_error(function() ps:subscribe("a", "t", -1) end)
    assert.has_error(function() ps:publish("t", io.stdout) end)
    assert.has_error(function() ps.publish(conc.chan(), "t", 1) end)
    -- as ch:send: a missing payload is a mistake, an explicit nil a value
    assert.has_error(function() ps:publish("t") end,
      "conc.pubsub:publish: payload expected")
    local sub = ps:subscribe("n", "t", 1)
    assert.are.equal(1, ps:publish("t", nil))
    assert.are.same({topic = "t"}, sub:recv())
  end)

  it("is shared: N publishing workers, M subscribers, exact counts",
    function()
    local ps = conc.pubsub()
    local N, PER, M = 4, 250, 3
    local subs = {}
    for j = 1, M do subs[j] = ps:subscribe("s" .. j, "t", N * PER) end
    local hs = {}
    for i = 1, N do
      hs[i] = conc.go(function(ps, i, per)
        local n = 0
        for k = 1, per do n = n + ps:publish("t", {from = i, k = k}) end
        return n
      end, ps, i, PER)
    end
    local total = 0
    for i = 1, N do total = total + support.join_ok(hs[i]) end
    assert.are.equal(N * PER * M, total)
    for j = 1, M do
      local seen = {}
      for _ = 1, N * PER do
        local m = subs[j]:recv()
        local key = m.payload.from .. ":" .. m.payload.k
        assert.is_nil(seen[key])
        seen[key] = true
      end
      assert.are.equal(0, subs[j]:len())
      assert.are.equal(0, ps:dropped("s" .. j))
    end
  end)

  it("wakes a subscriber waiting in another worker", function()
    local ps = conc.pubsub()
    local c = ps:subscribe("w", "t")
    local h = conc.go(function(c) return c:recv(5).payload end, c)
    conc.sleep(0.05) -- most likely parked by now; either way it gets it
    ps:publish("t", "hello")
    assert.are.equal("hello", support.join_ok(h))
  end)
end)
