--- conc: Go's concurrency for Lua 5.4.
-- The C module conc.core does the work; this file adds what reads best
-- in Lua (conc.pool) to the same table.
local conc = require("conc.core")
-- The globals it calls, as they are now, and no _ENV kept by any of its
-- functions: in a task's state this module is loaded once, its _ENV the
-- globals of the task that loaded it, which that task may go on to
-- change (type = nil), and which it would keep alive (what that task
-- left in its globals, a pub/sub or a ticker, was never freed).
local error, getmetatable, pairs, require, select, setmetatable, tostring,
  type = error, getmetatable, pairs, require, select, setmetatable,
  tostring, type

conc._VERSION = "conc scm"

--- conc.pool{new = fn}: sync.Pool for one lua_State. get() returns a
-- free object or fn()'s new one; put(x) makes x free again. Objects are
-- Lua values of this state, so a pool is not shared between workers:
-- create one per worker (each worker has its own state).
local pool_mt = {__name = "conc.pool"}
pool_mt.__index = pool_mt
-- Its refusal to travel names it (the codec's own words would be "a
-- table with a metatable").
function pool_mt.__conc_export()
  error("a conc.pool holds values of one lua_State: make one in each worker",
    0)
end

local function check_pool(self, method)
  if getmetatable(self) ~= pool_mt then
    error(("conc.pool:%s: conc.pool expected, got %s"):format(method,
      type(self)), 3)
  end
end

function pool_mt:get()
  check_pool(self, "get")
  local n = #self.free
  if n > 0 then
    local x = self.free[n]
    self.free[n] = nil
    return x
  end
  if self.new then return self.new() end
  return nil
end

function pool_mt:put(x)
  check_pool(self, "put")
  if x ~= nil then self.free[#self.free + 1] = x end
end

function pool_mt:__len() return #self.free end

function conc.pool(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("conc.pool: options must be a table like {new = fn}", 2)
  end
  for k in pairs(opts or {}) do -- a misspelled `new` would go unseen
    if k ~= "new" then
      error(("conc.pool: unknown option '%s' (the one option is new)")
        :format(tostring(k)), 2)
    end
  end
  local new = opts and opts.new
  if new ~= nil and type(new) ~= "function" then
    error("conc.pool: new must be a function", 2)
  end
  return setmetatable({new = new, free = {}}, pool_mt)
end

--- conc.defer(fn, ...): Go's `defer fn(...)` for a <close> variable:
--   local _ <close> = conc.defer(print, "bye")
-- calls fn(...) once, when the variable goes out of scope, normally or
-- by an error (the arguments are evaluated now, as Go's are). A value of
-- this state only: nothing shared, so it is plain Lua.
local defer_mt = {__name = "conc.defer"}

function defer_mt.__close(self)
  local fn = self.fn
  if fn == nil then return end
  self.fn = nil
  fn(require("table").unpack(self.args, 1, self.args.n))
end

function conc.defer(fn, ...)
  local mt = getmetatable(fn)
  if type(fn) ~= "function" and not (mt and mt.__call) then
    error(("conc.defer: bad argument #1 (function expected, got %s)")
      :format(type(fn)), 2)
  end
  return setmetatable({fn = fn, args = {n = select("#", ...), ...}},
    defer_mt)
end

return conc
