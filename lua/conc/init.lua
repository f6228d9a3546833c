--- conc: Go's concurrency for Lua 5.4.
-- The C module conc.core does the work; this file adds what reads best
-- in Lua: scoped lock guards (Go's `defer mu.Unlock()`) and conc.pool.
local core = require("conc.core")

local conc = {}
for k, v in pairs(core) do conc[k] = v end

conc._VERSION = "conc scm"

-- The methods table of a conc class, to add Lua-written methods to.
local function methods_of(object)
  return getmetatable(object).__index
end

-- A guard unlocks once, when its <close> variable goes out of scope.
local guard_mt = {
  __close = function(g)
    if g.unlock then
      local unlock = g.unlock
      g.unlock = nil
      unlock(g.lock)
    end
  end,
  __name = "conc.guard",
}

local function guard(lock, unlock)
  return setmetatable({lock = lock, unlock = unlock}, guard_mt)
end

--- mu:guard(): locks mu and returns a guard that unlocks it at the end of
-- the enclosing block: `local _ <close> = mu:guard()`.
local mutex_methods = methods_of(core.mutex())
function mutex_methods.guard(mu)
  mu:lock()
  return guard(mu, mutex_methods.unlock)
end

local rw_methods = methods_of(core.rwmutex())
--- rw:guard(): the write lock, released at the end of the block.
function rw_methods.guard(rw)
  rw:lock()
  return guard(rw, rw_methods.unlock)
end
--- rw:rguard(): a read lock, released at the end of the block.
function rw_methods.rguard(rw)
  rw:rlock()
  return guard(rw, rw_methods.runlock)
end

--- conc.pool{new = fn}: sync.Pool for one lua_State. get() returns a
-- free object or fn()'s new one; put(x) makes x free again. Objects are
-- Lua values of this state, so a pool is not shared between workers:
-- create one per worker (each worker has its own state).
local pool_mt = {__name = "conc.pool"}
pool_mt.__index = pool_mt

function pool_mt:get()
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
  if x ~= nil then self.free[#self.free + 1] = x end
end

function pool_mt:__len() return #self.free end

function conc.pool(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("conc.pool: options must be a table like {new = fn}", 2)
  end
  local new = opts and opts.new
  if new ~= nil and type(new) ~= "function" then
    error("conc.pool: new must be a function", 2)
  end
  return setmetatable({new = new, free = {}}, pool_mt)
end

return conc
