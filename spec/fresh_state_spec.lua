-- A task starts as a fresh state would, whatever the task before it on
-- the same pooled thread did (issue 11, point 2). Each case runs a task
-- that changes something state-wide, then tasks that must not see it.
-- Tasks run one after another, so the pool hands each to the same idle
-- thread (ROUNDS pairs make sure a thread that carried a change over
-- would be met).
local conc = require("conc")
local support = require("support")

local ROUNDS = 20

-- Runs fn in a worker and returns its results (fails on a worker error).
local function run(fn, ...)
  return support.join_ok(conc.go(fn, ...))
end

-- Runs `change` then `probe` ROUNDS times (each given the extra
-- arguments); probe must return true.
local function carries_nothing(change, probe, ...)
  for round = 1, ROUNDS do
    run(change, ...)
    local ok, what = run(probe, ...)
    assert(ok == true, ("round %d: %s"):format(round, tostring(what)))
  end
end

describe("a task starts as a fresh state would", function()
  it("getmetatable('').__index is the string table", function()
    assert.is_true(run(function()
      return getmetatable("").__index == string
    end))
  end)

  it("the idiom getmetatable('').__index.f = fn works in a task", function()
    assert.equal("x", run(function()
      getmetatable("").__index.trim = function(s)
        return (s:gsub("^%s+", ""):gsub("%s+$", ""))
      end
      return ("  x "):trim()
    end))
  end)

  it("a method added to the string table does not reach the next task",
    function()
      carries_nothing(function()
        string.shout = function(s) return s:upper() .. "!" end
      end, function()
        return string.shout == nil and ("x").shout == nil, "string.shout"
      end)
    end)

  it("a changed string metatable does not reach the next task", function()
    carries_nothing(function()
      getmetatable("").__call = function() return "called" end
    end, function()
      return not pcall(function() return ("x")() end), "__call"
    end)
    -- Kept by one task where a later one finds it (package.loaded
    -- persists), changed by that later task without getmetatable:
    for round = 1, ROUNDS do
      run(function() package.loaded.kept_meta = getmetatable("") end)
      run(function()
        local mt = package.loaded.kept_meta
        if mt then mt.__call = function() return "called" end end
      end)
      local ok, what = run(function()
        package.loaded.kept_meta = nil
        return not pcall(function() return ("x")() end), "kept __call"
      end)
      assert(ok == true, ("round %d: %s"):format(round, tostring(what)))
    end
    carries_nothing(function()
      debug.setmetatable("", {__index = {len = function() return -1 end}})
    end, function()
      return ("abc"):len() == 3 and getmetatable("").__index == string,
        "replaced metatable"
    end)
  end)

  it("a change to another standard library table does not carry over",
    function()
      carries_nothing(function() math.pi = 3 end, function()
        return math.pi > 3.14, "math.pi"
      end)
      carries_nothing(function() table.insert = nil end, function()
        return type(table.insert) == "function", "table.insert"
      end)
      carries_nothing(function() package.loaded.os = {} end, function()
        return type(os.time) == "function", "package.loaded.os"
      end)
    end)

  it("a change to package or package.searchers does not carry over",
    function()
      carries_nothing(function()
        package.config = "x"  -- luacheck: ignore 122
      end, function()
        return package.config:match("^[/\\]\n") ~= nil, "package.config"
      end)
      carries_nothing(function()
        package.searchers[2] = function() return "\n\tno searching" end
      end, function()
        local _, err = pcall(require, "no_such_module_x")
        return err:find("no file") ~= nil, "package.searchers[2]"
      end)
      carries_nothing(function()
        package.searchers = {}
      end, function()
        return #package.searchers == 4, "package.searchers"
      end)
      -- loadlib and searchpath are compared by address, unanchored (no
      -- other value can take a light C function's); the tables are the
      -- registry's.
      for _, field in ipairs({"loadlib", "searchpath"}) do
        carries_nothing(function(f)
          package[f] = function() return "replaced" end
        end, function(f)
          return debug.getinfo(package[f], "S").what == "C", "package." .. f
        end, field)
      end
      for _, field in ipairs({"loaded", "preload"}) do
        carries_nothing(function(f)
          package[f] = {}
        end, function(f)
          local name = f == "loaded" and "_LOADED" or "_PRELOAD"
          return package[f] == debug.getregistry()[name], "package." .. f
        end, field)
      end
    end)

  it("a task that sets package.path keeps its state for the next task",
    function()
      -- path and cpath are set for every task: they leave out of the
      -- package table's fingerprint, or each such task would cost a new
      -- state (package.loaded, which a kept state keeps, tells).
      local kept = 0
      for _ = 1, ROUNDS do
        local mark = run(function()
          package.path = "./?.lua;" .. package.path
          package.loaded.state_mark = package.loaded.state_mark or {}
          return tostring(package.loaded.state_mark)
        end)
        local seen = run(function()
          return tostring(package.loaded.state_mark)
        end)
        if seen == mark then kept = kept + 1 end
      end
      assert(kept >= ROUNDS // 2, kept)
    end)

  it("the globals table has no metatable, and strict.lua's idiom works",
    function()
      -- The lazy libraries' metatable is taken away (the libraries
      -- opened) when a task reaches for it: strict.lua's own __index
      -- hid every library not opened yet ('math' is not declared).
      local ok, max, had = run(function()
        local had = getmetatable(_G) ~= nil or debug.getmetatable(_G) ~= nil
        local mt = getmetatable(_G)
        if mt == nil then mt = {}; setmetatable(_G, mt) end
        mt.__declared = {}
        mt.__newindex = function(t, n, v)
          mt.__declared[n] = true; rawset(t, n, v)
        end
        mt.__index = function(_, n)
          if not mt.__declared[n] then
            error("variable '" .. n .. "' is not declared", 2)
          end
        end
        local ok, max = pcall(function() return math.max(1, 2) end)
        return ok, max, had
      end)
      assert.is_true(ok)
      assert.equal(2, max)
      assert.is_false(had)
    end)

  it("a change to the globals' metatable does not carry over", function()
    carries_nothing(function()
      setmetatable(_G, {__newindex = function(t, k) rawset(t, k, "poison") end})
    end, function()
      probe_global = 1  -- luacheck: ignore 111
      -- luacheck: ignore 113
      return probe_global == 1 and getmetatable(_G) == nil, "__newindex"
    end)
  end)

  it("a module an earlier task loaded keeps working, conc's own too",
    function()
      -- The module keeps as its _ENV the globals of the task that loaded
      -- it (a new table is made for the next task, not that one
      -- emptied: emptied, a module that defined a global as it loaded
      -- failed in every later task).
      for _ = 1, ROUNDS do
        assert.equal(42, run(function()
          return require("fixtures.globals_probe").twice(21)
        end))
      end
      -- conc's functions call the globals as they were when it loaded
      carries_nothing(function()
        require("conc")
        type = function() return "number" end  -- luacheck: ignore 121
      end, function()
        local pool = require("conc").pool({new = function() return {} end})
        return rawequal(getmetatable(pool), getmetatable(pool)) and
          pool:get() ~= nil, "conc's own functions"
      end)
    end)

  it("a metatable set on a library table does not carry over", function()
    carries_nothing(function()
      setmetatable(package, {__index = function() return "leaked" end})
    end, function()
      return getmetatable(package) == nil, "package's"
    end)
    carries_nothing(function()
      setmetatable(math, {__index = function() return "leaked" end})
    end, function()
      -- luacheck: ignore 143
      return math.nope == nil and getmetatable(math) == nil, "math's"
    end)
  end)

  it("a library a task sets to nil stays nil in it, opened or not, and " ..
     "is back for the next task", function()
    -- The sandboxing idiom: the lazy libraries' __index opened them again
    -- at the next read (a chunk loaded after `os = nil` had os.getenv).
    for _ = 1, ROUNDS do
      assert.same({n = 4}, {n = 4, run(function()
        os, io, debug, string = nil, nil, nil, nil  -- luacheck: ignore 121
        return load("return os, io, debug, string")()
      end)})
      assert.is_true(run(function()
        return os ~= nil and io ~= nil and debug ~= nil and string ~= nil
      end))
      -- one a module opened with require is the global's all the same
      assert.is_true(run(function()
        local m = require("utf8")
        return utf8 == m
      end))
    end
  end)

  it("collectgarbage('stop') does not carry over", function()
    carries_nothing(function() collectgarbage("stop") end, function()
      return collectgarbage("isrunning"), "collector stopped"
    end)
  end)

  it("the collector's mode and parameters do not carry over", function()
    carries_nothing(function()
      collectgarbage("generational")
    end, function()
      return collectgarbage("incremental") == "incremental", "mode"
    end)
    carries_nothing(function()
      collectgarbage("setpause", 1000)
      collectgarbage("setstepmul", 400)
    end, function()
      local pause = collectgarbage("setpause", 200)
      local mul = collectgarbage("setstepmul", 100)
      return pause == 200 and mul == 100, ("pause %d, stepmul %d"):format(
        pause, mul)
    end)
  end)

  it("debug.sethook does not carry over", function()
    carries_nothing(function()
      debug.sethook(function() end, "l")
    end, function()
      return debug.gethook() == nil, "hook still set"
    end)
  end)

  it("io.output(file) and io.input(file) do not carry over", function()
    carries_nothing(function()
      io.output(io.tmpfile())
      io.input(io.tmpfile())
    end, function()
      return io.output() == io.stdout and io.input() == io.stdin,
        "default files"
    end)
  end)

  it("a change to the files' methods or metatable does not carry over",
    function()
      -- getmetatable(io.stdout) reaches them without the debug library.
      carries_nothing(function()
        local mt = getmetatable(io.stdout)
        mt.__index.write = function() return "hijacked" end
        mt.__index.read = function() return "hijacked" end
        mt.__tostring = function() return "hijacked" end
      end, function()
        local f = io.tmpfile()
        local fine = f:write("x") == f and tostring(f):find("^file %(")
        f:seek("set")
        fine = fine and f:read("a") == "x"
        f:close()
        return fine, "files' methods"
      end)
    end)

  it("io's errors in a task read as plain Lua's (its wrappers, which " ..
     "move a call that may block off the main script's thread, keep " ..
     "names and lines)", function()
    local function errors()
      local out = {}
      local function try(fn) out[#out + 1] = select(2, pcall(fn)) end
      local f = io.open("/dev/null")
      try(function() return f:read("x") end)
      try(function() return io.read("x") end)
      f:close()
      try(function() return f:read() end)
      try(function() return io.open("/dev/null", "zz") end)
      try(function() for _ in io.popen("echo a"):lines("x") do end end)
      try(function()
        local p = io.popen("echo a; echo b")
        for _ in p:lines() do p:close() end
      end)
      try(function() for _ in io.lines("/dev/null", "x") do end end)
      try(function() return io.popen("true", "x") end)
      try(function() return os.execute(print) end)
      local lines = {}
      for l in io.popen("printf '1 2\\n3 4\\n'"):lines("n", "n") do
        lines[#lines + 1] = l
      end
      out[#out + 1] = table.concat(lines, ",")
      return table.concat(out, "\n")
    end
    local plain = errors()
    assert.matches("fresh_state_spec.lua:%d+: bad argument #1 to 'read'",
                   plain)
    assert.matches("'for iterator'", plain)
    for procs = 1, 2 do
      local before = conc.set_maxprocs(procs)
      assert.are.equal(plain, run(errors))
      conc.set_maxprocs(before)
    end
  end)

  it("metatables of other types do not carry over", function()
    carries_nothing(function()
      debug.setmetatable(0, {__index = math})
      debug.setmetatable(nil, {__index = function() return 1 end})
      debug.setmetatable(print, {__index = {x = 1}})
      debug.setmetatable(true, {__len = function() return 1 end})
    end, function()
      return getmetatable(0) == nil and getmetatable(nil) == nil and
        getmetatable(print) == nil and getmetatable(true) == nil,
        "a type metatable is still set"
    end)
  end)

  it("math.randomseed does not carry over", function()
    math.randomseed(42)
    local seeded = math.random(1 << 40)
    for _ = 1, ROUNDS do
      run(function() math.randomseed(42) end)
      assert.not_equal(seeded, run(function()
        return math.random(1 << 40)
      end))
    end
  end)

  it("warn('@on') does not carry over", function()
    local out, rc = support.run_script([[
      local conc = require("conc")
      for _ = 1, 5 do
        assert(conc.go(function() warn("@on") end):join())
        assert(conc.go(function() warn("leaked warning") end):join())
      end
      print("done")
    ]])
    assert.equal(0, rc)
    assert.equal("done\n", out)
  end)

  it("a replaced state still serves tasks, with modules loadable", function()
    for _ = 1, ROUNDS do
      run(function() string.x = 1 end)
      assert.equal(3, run(function()
        return require("conc").chan(3):cap() + #string.rep("", 0)
      end))
    end
  end)
end)

describe("cleaning a state between tasks", function()
  it("runs no code of the task's (a metatable on package.loaded)",
    function()
      -- the check reads package.loaded raw: an __index that raises or
      -- blocks must not crash or stall the thread
      for _ = 1, 5 do
        support.join_ok(conc.go(function()
          setmetatable(package.loaded, {__index = function() error("boom") end})
        end))
        assert.equal(3, run(function() return 1 + 2 end))
      end
    end)
end)
