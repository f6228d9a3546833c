-- The public names of the loaded module against the LuaLS definitions
-- (lua/conc/meta/) and docs/API.md. The names come from walking what
-- require("conc") returns and each object type's metatable at run time,
-- so a function or method added to the C binding without annotations
-- and docs fails here, and so does one documented or annotated that no
-- longer exists.
local conc = require("conc")
local cats = dofile("scripts/luacats.lua")

-- Internal names of the module, the only ones not annotated.
local INTERNAL = {
  -- the body of every conc.workpool and conc.stage worker: conc.core
  -- starts it itself; calling it from Lua is not supported.
  _flow_worker = true,
}

-- Metatables that conc makes but never hands to Lua code.
local INTERNAL_TYPES = {
  -- the state of a running m:range, held by the C call while fn runs
  ["conc.map.snapshot"] = true,
}

-- The meta files, in a stable order.
local function meta_files()
  local files = {}
  for path in io.popen("ls lua/conc/meta/*.lua"):lines() do
    files[#files + 1] = path
  end
  return files
end

-- Modules of the rock named conc.x in the docs: not fields of conc.
local ROCK_MODULES = {core = true, socket = true, meta = true}

-- One object of each type conc hands out, keyed by the type's __name.
-- Each entry makes the object and, in `done`, ends what it started.
local function make_objects()
  local objs, cleanup = {}, {}
  local function put(x) objs[getmetatable(x).__name or "?"] = x; return x end
  local ch = put(conc.chan(1))
  put(ch:recv_only())
  local h = put(conc.go(function() end))
  cleanup[#cleanup + 1] = function() assert(h:join()) end
  local ctx, cancel = conc.with_cancel(conc.background())
  put(ctx); put(cancel)
  put(conc.waitgroup())
  local mu = put(conc.mutex())
  put(mu:guard())
  put(conc.rwmutex()); put(conc.cond(mu)); put(conc.once())
  local sem = put(conc.semaphore(1))
  put(sem:guard())
  put(conc.map())
  local lim = put(conc.limiter(1, 1))
  put(lim:reserve())
  put(conc.breaker()); put(conc.errgroup()); put(conc.atomic())
  put(conc.pubsub())
  local t, tk = put(conc.timer(60)), put(conc.ticker(60))
  cleanup[#cleanup + 1] = function() t:stop(); tk:stop() end
  local _, stop = conc.signal.context(conc.background(), "SIGUSR2")
  put(stop)
  cleanup[#cleanup + 1] = function() stop() end
  local pool = put(conc.workpool(1, function(x) return x end))
  cleanup[#cleanup + 1] = function() pool:close(); assert(pool:wait()) end
  put(conc.pool{}); put(conc.defer(print))
  return objs, function()
    for _, fn in ipairs(cleanup) do fn() end
    mu:unlock(); sem:release()
  end
end

-- The methods of an object: its metatable's __index table (or, where
-- __index is a function that serves fields first, its methods table,
-- the function's upvalue).
local function methods_of(x)
  local mt = getmetatable(x)
  local index = mt.__index
  if type(index) == "function" then
    local _, up = debug.getupvalue(index, 1)
    index = up
  end
  local names = {}
  for k, v in pairs(type(index) == "table" and index or {}) do
    if type(k) == "string" and not k:match("^__") and type(v) == "function" then
      names[k] = true
    end
  end
  return names
end

local function sorted(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t)
  return t
end

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

describe("the public API", function()
  local model, parse_errors = cats.parse_files(meta_files())
  local objs, cleanup = make_objects()
  local api = read("docs/API.md")
  teardown(function() cleanup() end)

  it("the definition files parse, with no undefined type", function()
    assert.are.same({}, parse_errors)
  end)

  it("every module field is annotated, and every annotated one exists", function()
    local missing, absent = {}, {}
    local lib = assert(model.classes.conc, "no ---@class conc")
    for k, v in pairs(conc) do
      if not INTERNAL[k] and not cats.member(model, "conc", k) then
        missing[#missing + 1] = "conc." .. k
      end
      if type(v) == "table" and not INTERNAL[k] then
        local cls = lib.fields[k] and cats.class_names(lib.fields[k])[1]
        for sk in pairs(v) do
          if not (cls and cats.member(model, cls, sk)) then
            missing[#missing + 1] = "conc." .. k .. "." .. sk
          end
        end
      end
    end
    for _, set in ipairs{lib.functions, lib.fields} do
      for k in pairs(set) do
        if conc[k] == nil then absent[#absent + 1] = "conc." .. k end
      end
    end
    local sig = model.classes["conc.signal"]
    for k in pairs(sig and sig.functions or {}) do
      if conc.signal[k] == nil then absent[#absent + 1] = "conc.signal." .. k end
    end
    table.sort(missing); table.sort(absent)
    assert.are.same({}, missing, "not annotated")
    assert.are.same({}, absent, "annotated, not in the module")
  end)

  it("every object type is made here: none is left unchecked", function()
    -- luaL_newmetatable registers each C type by its __name; every conc
    -- type this process has met must be one this spec checks.
    local unchecked = {}
    for k, v in pairs(debug.getregistry()) do
      if type(k) == "string" and k:match("^conc%.") and type(v) == "table"
          and v.__name == k and not objs[k] and not INTERNAL_TYPES[k] then
        unchecked[#unchecked + 1] = k
      end
    end
    assert.are.same({}, unchecked)
  end)

  it("every method of every object type is annotated, and only those", function()
    local problems = {}
    for _, tname in ipairs(sorted(objs)) do
      local cls = model.classes[tname]
      if not cls then
        problems[#problems + 1] = "no ---@class " .. tname
      else
        local have = methods_of(objs[tname])
        for m in pairs(have) do
          if not cats.member(model, tname, m) then
            problems[#problems + 1] = tname .. ":" .. m .. " not annotated"
          end
        end
        for m in pairs(cls.methods) do
          if not have[m] then
            problems[#problems + 1] = tname .. ":" .. m .. " annotated, absent"
          end
        end
        for f in pairs(cls.fields) do
          if objs[tname][f] == nil then
            problems[#problems + 1] = tname .. "." .. f .. " annotated, absent"
          end
        end
        local mt = getmetatable(objs[tname])
        for op, meta in pairs{len = "__len", call = "__call"} do
          if (mt[meta] ~= nil) ~= (cls.operators[op] == true) then
            problems[#problems + 1] = ("%s: %s and ---@operator %s disagree")
              :format(tname, meta, op)
          end
        end
      end
    end
    -- a class with methods is an object type: it must be one that exists
    for name, cls in pairs(model.classes) do
      if next(cls.methods) and not objs[name] then
        problems[#problems + 1] = name .. " annotated, no such object type"
      end
    end
    table.sort(problems)
    assert.are.same({}, problems)
  end)

  it("docs/API.md names every module function", function()
    local missing = {}
    for k, v in pairs(conc) do
      if type(v) == "function" and not INTERNAL[k] and
          not api:find("`conc%." .. k .. "%f[^%w_]") then
        missing[#missing + 1] = "conc." .. k
      end
    end
    for k in pairs(conc.signal) do
      if not api:find("`conc%.signal%." .. k .. "%f[^%w_]") then
        missing[#missing + 1] = "conc.signal." .. k
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("docs/API.md's Index lists every module function and no other", function()
    local list = assert(api:match("\n## Index\n.-\nModule functions: (.-);\n"),
      "docs/API.md's Index has no \"Module functions:\" list")
    local listed, problems = {}, {}
    for k in list:gmatch("`conc%.([%w_]+)`") do listed[k] = true end
    for k, v in pairs(conc) do
      if type(v) == "function" and not INTERNAL[k] and not listed[k] then
        problems[#problems + 1] = "conc." .. k .. " not listed"
      end
    end
    for k in pairs(listed) do
      if type(conc[k]) ~= "function" then
        problems[#problems + 1] = "conc." .. k .. " listed, not a function"
      end
    end
    table.sort(problems)
    assert.are.same({}, problems)
  end)

  -- The Index at the end of docs/API.md: one row per object type, its
  -- methods in backticks.
  local function api_index()
    local section = assert(api:match("\n## Index\n(.*)$"),
      "docs/API.md has no \"## Index\" section at its end")
    local index = {}
    for row in section:gmatch("\n(|[^\n]*)") do
      local tname, rest = row:match("^|%s*`(conc%.[%w_.]+)`%s*|[^|]*|(.*)|%s*$")
      if tname then
        index[tname] = {}
        -- parenthesised notes (fields, `#`) are not methods
        for m in rest:gsub("%b()", ""):gmatch("`([%a_][%w_]*)`") do
          index[tname][m] = true
        end
      end
    end
    return index
  end

  it("docs/API.md's Index lists every object type and exactly its methods", function()
    local index, problems = api_index(), {}
    for _, tname in ipairs(sorted(objs)) do
      local listed = index[tname]
      if not listed then
        problems[#problems + 1] = tname .. " not in the Index"
      else
        local have = methods_of(objs[tname])
        for m in pairs(have) do
          if not listed[m] then problems[#problems + 1] = tname .. ":" .. m .. " not listed" end
        end
        for m in pairs(listed) do
          if not have[m] then problems[#problems + 1] = tname .. ":" .. m .. " listed, absent" end
        end
      end
    end
    for tname in pairs(index) do
      if not objs[tname] then problems[#problems + 1] = tname .. " listed, no such type" end
    end
    table.sort(problems)
    assert.are.same({}, problems)
  end)

  it("docs/API.md describes every method in its text", function()
    local body = api:match("^(.*)\n## Index\n")
    local missing = {}
    for _, tname in ipairs(sorted(objs)) do
      for m in pairs(methods_of(objs[tname])) do
        if not body:find(":" .. m .. "%f[^%w_]") then
          missing[#missing + 1] = tname .. ":" .. m
        end
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("docs/API.md names no conc function or method that does not exist", function()
    local absent = {}
    for name in api:gmatch("%f[%w_.]conc%.([%a_][%w_]*)") do
      if conc[name] == nil and not objs["conc." .. name] and
          not ROCK_MODULES[name] then
        absent[#absent + 1] = "conc." .. name
      end
    end
    for name in api:gmatch("%f[%w_.]conc%.signal%.([%a_][%w_]*)") do
      if conc.signal[name] == nil and not objs["conc.signal." .. name] then
        absent[#absent + 1] = "conc.signal." .. name
      end
    end
    -- error messages name the type and the method: conc.chan:send
    for tname, m in api:gmatch("%f[%w_.](conc%.[%w_.]+):([%a_][%w_]*)") do
      if objs[tname] and not methods_of(objs[tname])[m] then
        absent[#absent + 1] = tname .. ":" .. m
      end
    end
    table.sort(absent)
    assert.are.same({}, absent)
  end)
end)
