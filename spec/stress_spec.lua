-- The stress suite (tagged #stress), run by `make stress` and `make
-- stress-short` after the stress driver (stress/stress.lua), which does
-- the operations at scale. Here: the driver's own accounting catches a
-- lost message and a seed is reported as given, and memory returns to
-- its baseline after a churn of channels and workers.
local conc = require("conc")
local support = require("support")

-- Runs the driver in a fresh process with args and env (a string of
-- shell assignments); returns its output and exit code.
local function driver(args, env)
  local out, rc = support.run_script(([[
    arg = {%s}
    dofile("stress/stress.lua")
  ]]):format(args), 120, env)
  return out, rc
end

describe("#stress", function()
  it("the driver reports its seed and exits 0 when all is accounted for",
    function()
      local out, rc = driver('"4242", "20000"')
      assert.are.equal(0, rc, out)
      assert.matches("^stress: seed 4242, target 20000 operations\n", out)
      local n = tonumber(out:match("\nstress: seed 4242, (%d+) operations, " ..
        "0 failures\n$"))
      assert.is_truthy(n and n >= 20000, out)
    end)

  it("the driver fails when a message is lost", function()
    local out, rc = driver('"4242", "20000"', "export STRESS_BREAK=1")
    assert.are.equal(1, rc, out)
    assert.matches("stress: FAIL round 1, flow %(.-%): flow: sent (%d+)", out)
    local f = tonumber(out:match("operations, (%d+) failures\n$"))
    assert.is_truthy(f and f >= 1, out)
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
    local h = conc.go(function(R)
      for _ = 1, R do
        local chans = {}
        for i = 1, 20 do chans[i] = conc.chan(4) end
        local hs = {}
        for i = 1, 4 do
          hs[i] = conc.go(function(cs)
            -- each channel carries the next: references, not cycles
            -- (a message that holds its own channel is a cycle that
            -- reference counting cannot free; see docs/API.md)
            for k = 1, #cs - 1 do cs[k]:send({cs[k + 1]}) end
          end, chans)
        end
        for i = 1, 4 do assert(hs[i]:join()) end
      end
    end, 250)
    assert(h:wait(120), "the churn did not finish in 120 s")
    support.join_ok(h)
    -- the handle is an object too: drop it
    h = nil  -- luacheck: ignore 311 (dropped for the GC)
    -- idle worker threads collect their garbage after a moment
    local t0 = conc.now()
    repeat  -- (the baseline may itself hold garbage that idle workers
      collectgarbage()  -- have not collected yet: at most base, then)
      if objects() <= base then break end
      conc.sleep(0.02)
    until conc.now() - t0 > 10
    local alive = {}
    for kind, k in pairs(conc.stats().objects) do
      if k > 0 then alive[#alive + 1] = kind .. " " .. k end
    end
    assert.is_true(objects() <= base, objects() .. " objects alive (" ..
      table.concat(alive, ", ") .. "), " .. base .. " before")
    assert.is_true(collectgarbage("count") < lua_base + 256)
  end)
end)
