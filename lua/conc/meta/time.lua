---@meta
-- LuaLS definitions: time, contexts and signals (see conc.lua).

---@class conc
local conc = {}

---Seconds of the monotonic clock, as a float.
---@return number
function conc.now() end

---Blocks for `seconds`; with a context, returns early when it ends.
---@param seconds number
---@param ctx conc.ctx?
---@return true? ok
---@return conc.reason? reason
function conc.sleep(seconds, ctx) end

---Go's `time.After`: a receive-only channel that receives the time it was due
---once, after `seconds`.
---@param seconds number
---@return conc.chan.recv_only
function conc.after(seconds) end

---Go's `time.Timer`: `timer.C` receives the time it was due (`conc.now()`'s
---clock) when it fires.
---@param seconds number
---@return conc.timer
function conc.timer(seconds) end

---Go's `time.Ticker`: `ticker.C` receives every `seconds` the time that tick
---was due (start + k x `seconds`).
---@param seconds number
---@return conc.ticker
function conc.ticker(seconds) end

---@class conc.timer
---@field C conc.chan.recv_only The channel the timer fires on.
local timer = {}

---Stops the timer; `true` if it was active.
---@return boolean
function timer:stop() end

---Re-arms the timer to fire after `seconds`; `true` if it was active.
---@param seconds number
---@return boolean
function timer:reset(seconds) end

---@class conc.ticker
---@field C conc.chan.recv_only The channel the ticks arrive on.
local ticker = {}

---Stops the ticker; `true` if it was active.
---@return boolean
function ticker:stop() end

---Changes the interval to `seconds`; `true` if it was active.
---@param seconds number
---@return boolean
function ticker:reset(seconds) end

---The root context, never canceled.
---@return conc.ctx
function conc.background() end

---The root context (Go's `context.TODO`): the same as `background`.
---@return conc.ctx
function conc.todo() end

---A child of `parent` canceled by `cancel` (or when `parent` is).
---@param parent conc.ctx
---@return conc.ctx ctx
---@return conc.cancel cancel
function conc.with_cancel(parent) end

---Go's name for `with_cancel`: every cancel takes an optional cause.
---@param parent conc.ctx
---@return conc.ctx ctx
---@return conc.cancel cancel
function conc.with_cancel_cause(parent) end

---A child of `parent` canceled after `seconds`.
---@param parent conc.ctx
---@param seconds number
---@return conc.ctx ctx
---@return conc.cancel cancel
function conc.with_timeout(parent, seconds) end

---A child of `parent` canceled at `t` (on `conc.now()`'s clock).
---@param parent conc.ctx
---@param t number
---@return conc.ctx ctx
---@return conc.cancel cancel
function conc.with_deadline(parent, t) end

---A key: a string, number or boolean, or any conc object (compared by
---identity: a private `conc.chan()` makes a key no other code can name).
---@alias conc.ctx_key
---| string
---| number
---| boolean
---| conc.chan
---| conc.ctx
---| conc.mutex
---| conc.rwmutex
---| conc.waitgroup
---| conc.cond
---| conc.once
---| conc.atomic
---| conc.map
---| conc.semaphore
---| conc.limiter
---| conc.breaker
---| conc.errgroup
---| conc.pubsub
---| conc.workpool
---| conc.timer
---| conc.ticker
---| conc.worker

---A child of `parent` that carries `value` under `key`.
---@param parent conc.ctx
---@param key conc.ctx_key
---@param value any
---@return conc.ctx
function conc.with_value(parent, key, value) end

---Go's `context.Context`, shared by reference between workers.
---@class conc.ctx
local ctx = {}

---A receive-only channel closed when the context is canceled.
---@return conc.chan.recv_only
function ctx:done() end

---`nil` while live, else `"context canceled"` or
---`"context deadline exceeded"`.
---@return conc.reason?
function ctx:err() end

---The deadline and `true`, or `nil, false` when there is none.
---@return number? t
---@return boolean has
function ctx:deadline() end

---The value of the nearest context with that key, or `nil`.
---@param key conc.ctx_key
---@return any
function ctx:value(key) end

---The cause given to `cancel`, else `ctx:err()`.
---@return any
function ctx:cause() end

---Cancels its context and every descendant; idempotent. Callable, and
---a `<close>` value (Go's `defer cancel()`); it travels by reference.
---@class conc.cancel
---@operator call(any?): nil

---Go's os/signal.
---@class conc.signal
local signal = {}

---@alias conc.signal_name
---| "SIGHUP"
---| "SIGINT"
---| "SIGQUIT"
---| "SIGUSR1"
---| "SIGUSR2"
---| "SIGALRM"
---| "SIGTERM"
---| "SIGWINCH"

---Sends each named signal (every one conc knows if none is named) on
---`ch` as its name; a full channel misses it, as in Go.
---@param ch conc.chan
---@param ... conc.signal_name
function signal.notify(ch, ...) end

---No signal is sent on `ch` once it returns.
---@param ch conc.chan
function signal.stop(ch) end

---Go's `signal.NotifyContext`: `ctx` is canceled when a named signal
---arrives (its cause is the signal's name) or `parent` is.
---@param parent conc.ctx
---@param ... conc.signal_name
---@return conc.ctx ctx
---@return conc.signal.stop stop
function signal.context(parent, ...) end

---Unregisters the signals of `conc.signal.context` and cancels its
---context; idempotent. Callable, and a `<close>` value.
---@class conc.signal.stop
---@operator call: nil

return conc
