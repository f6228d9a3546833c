---@meta
-- LuaLS definitions: sync, maps, atomics, defer (see conc.lua).

---@class conc
local conc = {}

---Go's `sync.WaitGroup`.
---@return conc.waitgroup
function conc.waitgroup() end

---@class conc.waitgroup
local waitgroup = {}

---Adds `delta` (default 1) to the counter; below zero raises.
---@param delta integer?
function waitgroup:add(delta) end

---Subtracts 1 from the counter.
function waitgroup:done() end

---Waits until the counter is zero.
---@param timeout conc.timeout?
---@return true? ok
---@return conc.reason? reason
function waitgroup:wait(timeout) end

---The counter, for diagnostics.
---@return integer
function waitgroup:count() end

---Go 1.25's `WaitGroup.Go`: adds 1 and runs `fn(...)` in a worker that
---is done when `fn` returns or raises.
---@param fn function
---@param ... any
---@return conc.worker? handle
---@return string? message
---@return "spawn"? name
function waitgroup:go(fn, ...) end

---Go's `sync.Mutex` (its normal and starvation modes), not tied to a worker.
---@return conc.mutex
function conc.mutex() end

---@class conc.mutex
local mutex = {}

---Locks, waiting while another holder has it.
function mutex:lock() end

---Unlocks; raises if it is not locked.
function mutex:unlock() end

---Locks only if it is free.
---@return boolean
function mutex:try_lock() end

---Locks and returns a `<close>` value that unlocks it.
---@return conc.guard
function mutex:guard() end

---A `<close>` value that unlocks its (rw)mutex when it goes out of scope.
---@class conc.guard

---Go's `sync.RWMutex`, with writer preference.
---@return conc.rwmutex
function conc.rwmutex() end

---@class conc.rwmutex
local rwmutex = {}

---Locks for writing.
function rwmutex:lock() end

---Unlocks a write lock; raises if it is not write-locked.
function rwmutex:unlock() end

---Locks for reading.
function rwmutex:rlock() end

---Unlocks a read lock; raises if it is not read-locked.
function rwmutex:runlock() end

---Locks for writing only if it is free.
---@return boolean
function rwmutex:try_lock() end

---Locks for reading only if no writer holds or waits for it.
---@return boolean
function rwmutex:try_rlock() end

---Write-locks and returns a `<close>` value that unlocks it.
---@return conc.guard
function rwmutex:guard() end

---Read-locks and returns a `<close>` value that read-unlocks it.
---@return conc.guard
function rwmutex:rguard() end

---Go's `sync.Cond` over a `conc.mutex`.
---@param mu conc.mutex
---@return conc.cond
function conc.cond(mu) end

---@class conc.cond
---@field L conc.mutex The mutex of the condition.
local cond = {}

---Unlocks `L`, waits for a signal, and locks `L` again.
function cond:wait() end

---Wakes one waiter.
function cond:signal() end

---Wakes every waiter.
function cond:broadcast() end

---Go's `sync.Once` (with `OnceValue`'s results and errors).
---@return conc.once
function conc.once() end

---@class conc.once
local once = {}

---Runs `fn(...)` exactly once across every worker that shares the
---once; every caller gets its results (copies, but for the caller that
---ran it) or its error.
---@generic R
---@param fn fun(...): R
---@param ... any
---@return R ...
function once:call(fn, ...) end

---@class conc.pool_options
---@field new (fun(): any)? Makes an object when the pool has none free.

---Go's `sync.Pool` for one `lua_State` (not shared between workers).
---@param options conc.pool_options?
---@return conc.pool
function conc.pool(options) end

---@class conc.pool
---@operator len: integer
local pool = {}

---A free object, or `new()`'s, or `nil` without `new`.
---@return any
function pool:get() end

---Makes `x` free again.
---@param x any
function pool:put(x) end

---Go's `defer fn(...)` for a `<close>` variable: calls `fn(...)` once
---when the variable goes out of scope (arguments evaluated now).
---@param fn function
---@param ... any
---@return conc.defer
function conc.defer(fn, ...) end

---A `<close>` value made by `conc.defer`.
---@class conc.defer

---Go's `atomic.Int64`, shared by reference.
---@param n integer?
---@return conc.atomic
function conc.atomic(n) end

---@class conc.atomic
local atomic = {}

---The value.
---@return integer
function atomic:load() end

---Sets the value.
---@param n integer
function atomic:store(n) end

---Adds `delta` (default 1); returns the new value (wrapping around).
---@param delta integer?
---@return integer
function atomic:add(delta) end

---Sets the value; returns the old one.
---@param n integer
---@return integer
function atomic:swap(n) end

---Sets `new` only if the value is `old`; returns whether it did.
---@param old integer
---@param new integer
---@return boolean
function atomic:compare_and_swap(old, new) end

---A key of a `conc.map`.
---@alias conc.map_key string|number|boolean

---Go's `sync.Map`, shared by reference; values are copied in and out.
---@return conc.map
function conc.map() end

---@class conc.map
---@operator len: integer
local map = {}

---The value stored for `k` and `true`, or `nil, false` if absent.
---@param k conc.map_key
---@return any v
---@return boolean loaded
function map:load(k) end

---Sets `k` to `v` (`nil` is a value; it must be given).
---@param k conc.map_key
---@param v any
function map:store(k, v) end

---The present value and `true`, or stores `v` and returns `v, false`.
---@param k conc.map_key
---@param v any
---@return any actual
---@return boolean loaded
function map:load_or_store(k, v) end

---Removes `k`; returns the value it had and `true`, or `nil, false`.
---@param k conc.map_key
---@return any v
---@return boolean loaded
function map:load_and_delete(k) end

---Removes `k`.
---@param k conc.map_key
function map:delete(k) end

---Stores `v`; returns the previous value and `true`, or `nil, false`.
---@param k conc.map_key
---@param v any
---@return any previous
---@return boolean loaded
function map:swap(k, v) end

---Stores `new` only if `k` is present with a value equal to `old`.
---@param k conc.map_key
---@param old any
---@param new any
---@return boolean swapped
function map:compare_and_swap(k, old, new) end

---Removes `k` only if its value equals `old`.
---@param k conc.map_key
---@param old any
---@return boolean deleted
function map:compare_and_delete(k, old) end

---Calls `fn(k, v)` for each entry of a snapshot until it returns `false`.
---@param fn fun(k: conc.map_key, v: any): boolean?
function map:range(fn) end

---The number of entries.
---@return integer
function map:len() end

---Removes every entry, atomically.
function map:clear() end

return conc
