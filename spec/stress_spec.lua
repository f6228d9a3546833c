-- The stress suite (tagged #stress: `make stress`, or `make stress-short`
-- as CI runs it). Fixed numbers of operations (scaled by STRESS_SCALE),
-- each run under a time bound; every message is accounted for by
-- count, sum and sum of squares (a loss and a duplicate cannot cancel).
local conc = require("conc")
local support = require("support")

local SCALE = tonumber(os.getenv("STRESS_SCALE")) or 1
local ops = 0  -- channel operations run, reported at the end

-- Runs fn in a worker and fails if it takes longer than seconds.
local function bounded(seconds, fn, ...)
  local h = conc.go(fn, ...)
  assert(h:wait(seconds), "a stress run did not finish in " .. seconds .. " s")
  return support.join_ok(h)
end

local function checksum(values)
  local n, s, s2 = 0, 0, 0
  for _, v in ipairs(values) do n, s, s2 = n + 1, s + v, s2 + v * v end
  return n, s, s2
end

describe("#stress", function()
  for _, cap in ipairs({0, 1, 64}) do
    it(("producers x consumers with mixed receives, capacity %d"):format(cap),
      function()
        local P, C, K = 4, 4, math.floor(3000 * SCALE)
        local result = bounded(60 * SCALE, function(cap_, P_, C_, K_)
          local ch = conc.chan(cap_)
          local prods, cons = {}, {}
          for p = 1, P_ do
            prods[p] = conc.go(function(c, id, k)
              for i = 1, k do
                local v = id * 10000000 + i
                if i % 3 == 0 then
                  assert(c:send(v))
                elseif i % 3 == 1 then  -- select send with a timeout case
                  local sent = false
                  while not sent do
                    sent = conc.select{{"send", c, v}, timeout = 0.01} == 1
                  end
                else  -- try_send, then a select with a timer case
                  while not c:try_send(v) do
                    local j = conc.select{{"send", c, v},
                                          {"recv", conc.after(0.005)}}
                    if j == 1 then break end
                  end
                end
              end
            end, ch, p, K_)
          end
          for k = 1, C_ do
            cons[k] = conc.go(function(c, mode)
              local got = {}
              while true do
                local v, ok
                if mode == 1 then
                  v, ok = c:recv()
                elseif mode == 2 then
                  local i
                  i, v, ok = conc.select{{"recv", c}, default = true}
                  if i == "default" then
                    i, v, ok = conc.select{{"recv", c}, timeout = 0.01}
                    if i == "timeout" then ok = nil end
                  end
                else
                  v, ok = c:recv(0.01)
                end
                if ok == false then return got end
                if ok then got[#got + 1] = v end
              end
            end, ch, k % 3 + 1)
          end
          for p = 1, P_ do assert(prods[p]:join()) end
          ch:close()
          local all = {}
          for k = 1, C_ do
            local ok, got = cons[k]:join()
            assert(ok, got)
            for _, v in ipairs(got) do all[#all + 1] = v end
          end
          return all
        end, cap, P, C, K)
        local n, s, s2 = checksum(result)
        local en, es, es2 = 0, 0, 0
        for p = 1, P do
          for i = 1, K do
            local v = p * 10000000 + i
            en, es, es2 = en + 1, es + v, es2 + v * v
          end
        end
        assert.are.same({en, es, es2}, {n, s, s2})
        ops = ops + 2 * n
      end)
  end

  it("close racing with blocked senders and receivers", function()
    local rounds = math.floor(200 * SCALE)
    local sent_ok, received = bounded(60 * SCALE, function(R)
      local sent_total, recv_total = 0, 0
      for r = 1, R do
        local ch = conc.chan(r % 3)
        local senders, receivers = {}, {}
        for i = 1, 3 do
          senders[i] = conc.go(function(c)
            local n = 0
            for v = 1, 50 do
              local ok = pcall(c.send, c, v)
              if not ok then return n end
              n = n + 1
            end
            return n
          end, ch)
          receivers[i] = conc.go(function(c)
            local n = 0
            for _ in c:range() do n = n + 1 end
            return n
          end, ch)
        end
        conc.sleep(((r * 7) % 5) * 0.0002)  -- vary when the close lands
        ch:close()
        for i = 1, 3 do
          local _, n = senders[i]:join()
          sent_total = sent_total + n
          local _, m = receivers[i]:join()
          recv_total = recv_total + m
        end
      end
      return sent_total, recv_total
    end, rounds)
    assert.are.equal(sent_ok, received)  -- each successful send arrived
    ops = ops + sent_ok + received
  end)

  it("selects mixing sends, receives, defaults and timeouts", function()
    local N = math.floor(4000 * SCALE)
    local total = bounded(60 * SCALE, function(n)
      local a, b, c = conc.chan(), conc.chan(8), conc.chan(1)
      local ws = {}
      for w = 1, 4 do
        ws[w] = conc.go(function(x, y, z, count, id)
          local sent, got, sum = 0, 0, 0
          while sent < count do
            local v = id * 1000000 + sent
            local i, rv, ok = conc.select{
              {"send", x, v}, {"send", y, v}, {"recv", z},
              timeout = 0.002}
            if i == 1 or i == 2 then sent = sent + 1
            elseif i == 3 and ok then got, sum = got + 1, sum + rv end
          end
          return got, sum
        end, a, b, c, n, w)
      end
      local recvd, rsum, sent_back = 0, 0, 0
      local finished = 0
      local dones = {}
      for w = 1, 4 do dones[w] = ws[w]:done() end
      while finished < 4 do
        local cases = {{"recv", a}, {"recv", b}, {"send", c, 1}, n = 7}
        for w = 1, 4 do cases[3 + w] = dones[w] and {"recv", dones[w]} end
        local i, v = conc.select(cases)
        if i == 1 or i == 2 then recvd, rsum = recvd + 1, rsum + v
        elseif i == 3 then sent_back = sent_back + 1
        else dones[i - 3] = nil; finished = finished + 1 end
      end
      -- drain what the workers still had in flight
      while true do
        local i, v = conc.select{{"recv", b}, default = true}
        if i == "default" then break end
        recvd, rsum = recvd + 1, rsum + v
      end
      local back = 0
      for w = 1, 4 do local _, g = ws[w]:join(); back = back + g end
      local unread = #c
      return {recvd, rsum, sent_back, back + unread}
    end, N)
    local expect_sum = 0
    for w = 1, 4 do
      for s = 0, N - 1 do expect_sum = expect_sum + w * 1000000 + s end
    end
    assert.are.equal(4 * N, total[1])
    assert.are.equal(expect_sum, total[2])
    assert.are.equal(total[3], total[4])  -- every value sent back arrived
    ops = ops + total[1] * 2 + total[3] * 2
  end)

  it("memory returns to its baseline once everything is dropped", function()
    collectgarbage()
    collectgarbage()
    local function objects()
      local n = 0
      for _, k in pairs(conc.stats().objects) do n = n + k end
      return n
    end
    local base = objects()
    local lua_base = collectgarbage("count")
    bounded(60 * SCALE, function(R)
      for _ = 1, R do
        local chans = {}
        for i = 1, 20 do chans[i] = conc.chan(4) end
        local hs = {}
        for i = 1, 4 do
          hs[i] = conc.go(function(cs)
            -- each channel carries the next: references, not cycles
            -- (a message that holds its own channel is a cycle that
            -- reference counting cannot free; see docs/API.md)
            for i = 1, #cs - 1 do cs[i]:send({cs[i + 1]}) end
          end, chans)
        end
        for i = 1, 4 do hs[i]:join() end
      end
    end, math.floor(50 * SCALE))
    -- idle worker threads collect their garbage after a moment
    local t0 = conc.now()
    repeat  -- (the baseline may itself hold garbage that idle workers
      collectgarbage()  -- have not collected yet: at most base, then)
      if objects() <= base then break end
      conc.sleep(0.02)
    until conc.now() - t0 > 10
    assert.is_true(objects() <= base, objects() .. " objects alive, " ..
      base .. " before")
    assert.is_true(collectgarbage("count") < lua_base + 256)
  end)

  it("reports what it ran", function()
    print(("\nstress: %d channel operations, 0 failures (scale %g)"):format(
      ops, SCALE))
    assert.is_true(ops > 0)
  end)
end)
