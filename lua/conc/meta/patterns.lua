---@meta
-- LuaLS definitions: the chapter's patterns as shared objects (see
-- conc.lua): semaphore, limiter, breaker, errgroup, pubsub, workpool,
-- stage.

---@class conc
local conc = {}

---x/sync's `semaphore.Weighted` of `n` units, FIFO.
---@param n integer
---@return conc.semaphore
function conc.semaphore(n) end

---@class conc.semaphore
local semaphore = {}

---Takes `w` units (default 1), waiting until they are free.
---@param w integer?
---@param timeout conc.timeout?
---@return true? ok
---@return conc.reason? reason
---@overload fun(self: conc.semaphore, ctx: conc.ctx, w: integer?): true?, conc.reason?
function semaphore:acquire(w, timeout) end

---Takes `w` units only if they are free and nobody waits.
---@param w integer?
---@return boolean
function semaphore:try_acquire(w) end

---Gives `w` units back; raises when more than held.
---@param w integer?
function semaphore:release(w) end

---Acquires `w` units and returns a `<close>` value that releases them.
---@param w integer?
---@param timeout conc.timeout?
---@return conc.semaphore.guard? guard
---@return conc.reason? reason
---@overload fun(self: conc.semaphore, ctx: conc.ctx, w: integer?): conc.semaphore.guard?, string?
function semaphore:guard(w, timeout) end

---The number of units.
---@return integer
function semaphore:size() end

---Units held now, for diagnostics.
---@return integer
function semaphore:held() end

---A `<close>` value that releases the units of `s:guard()`.
---@class conc.semaphore.guard

---golang.org/x/time/rate's `Limiter`: `burst` tokens refilled at `rate`
---a second (`math.huge`: no limit).
---@param rate number
---@param burst integer
---@return conc.limiter
function conc.limiter(rate, burst) end

---@class conc.limiter
local limiter = {}

---Whether `n` events (default 1) may happen now; takes their tokens.
---@param n integer?
---@return boolean
function limiter:allow(n) end

---Waits until `n` events (default 1) may happen.
---@param n integer?
---@param timeout conc.timeout?
---@return true? ok
---@return string? reason
---@overload fun(self: conc.limiter, ctx: conc.ctx, n: integer?): true?, string?
function limiter:wait(n, timeout) end

---Takes `n` tokens (default 1) now, however long they take to come.
---@param n integer?
---@return conc.reservation
function limiter:reserve(n) end

---Sets the rate from now on.
---@param rate number
function limiter:set_limit(rate) end

---Sets the burst from now on.
---@param burst integer
function limiter:set_burst(burst) end

---The rate (`math.huge`: no limit).
---@return number
function limiter:limit() end

---The burst.
---@return integer
function limiter:burst() end

---Tokens now (negative while reservations wait for theirs).
---@return number
function limiter:tokens() end

---Go's `rate.Reservation`, shared by reference.
---@class conc.reservation
local reservation = {}

---`false` when `n` exceeded the burst (nothing was taken).
---@return boolean
function reservation:ok() end

---Seconds to wait before acting (`math.huge` if not ok).
---@return number
function reservation:delay() end

---Gives back the tokens that later reservations do not count on.
function reservation:cancel() end

---@alias conc.breaker_state "closed"|"open"|"half-open"

---@class conc.breaker_options
---@field failures integer? Consecutive failures that open it (5).
---@field timeout number? Seconds open before half-open (30).
---@field successes integer? Consecutive successes that close it (1).
---@field probes integer? Calls allowed at once when half-open (1).
---@field on_change (fun(from: conc.breaker_state, to: conc.breaker_state))?

---A circuit breaker shared by every worker that holds it.
---@param options conc.breaker_options?
---@return conc.breaker
function conc.breaker(options) end

---@class conc.breaker
local breaker = {}

---Runs `fn(...)` in the caller unless the breaker refuses it:
---`fn`'s results, or `nil, "circuit breaker is open"`, or
---`nil, "too many probes"`. A raise in `fn` is counted and re-raised.
---@param fn function
---@param ... any
---@return any ...
function breaker:call(fn, ...) end

---The state now.
---@return conc.breaker_state
function breaker:state() end

---@class conc.breaker_counts
---@field requests integer
---@field successes integer
---@field failures integer
---@field consecutive_successes integer
---@field consecutive_failures integer

---The counts of the current state.
---@return conc.breaker_counts
function breaker:counts() end

---x/sync's `errgroup.WithContext`: a group and the context its first
---failure cancels.
---@param parent conc.ctx?
---@return conc.errgroup g
---@return conc.ctx ctx
function conc.errgroup(parent) end

---@class conc.errgroup
local errgroup = {}

---Runs `fn(...)` in a worker (waiting first while the group is at its
---limit). `fn` fails by raising or returning `nil, err`.
---@param fn function
---@param ... any
function errgroup:go(fn, ...) end

---As `go`, but `false` (nothing runs) when the group is at its limit.
---@param fn function
---@param ... any
---@return boolean
function errgroup:try_go(fn, ...) end

---At most `n` functions at once; negative: no limit; 0: `go` waits for ever.
---@param n integer
function errgroup:set_limit(n) end

---Waits for every function; returns the first error, if any.
---@param timeout conc.timeout?
---@return true? ok
---@return any err
function errgroup:wait(timeout) end

---Every failure's error so far, first first.
---@return any[]
function errgroup:errors() end

---The limit (`-1`: none).
---@return integer
function errgroup:limit() end

---Functions counted now: from `g:go` (waiting for the limit included) to their end.
---@return integer
function errgroup:running() end

---The chapter's PubSub as a shared object.
---@return conc.pubsub
function conc.pubsub() end

---@class conc.pubsub_message
---@field topic string
---@field payload any

---@class conc.pubsub
---@operator len: integer
local pubsub = {}

---Subscribes `id` to `topics`: a receive-only channel of
---`conc.pubsub_message` with `capacity` (default 100) slots.
---@param id string
---@param topics string|string[]
---@param capacity integer?
---@return conc.chan.recv_only
function pubsub:subscribe(id, topics, capacity) end

---Closes the subscriber's channel; `false` if `id` was not subscribed.
---@param id string
---@return boolean
function pubsub:unsubscribe(id) end

---Delivers `{topic =, payload =}` to every subscriber of `topic` with
---room; never blocks. Returns how many received it.
---@param topic string
---@param payload any
---@return integer
function pubsub:publish(topic, payload) end

---Messages `id` missed, or `nil` if it is not subscribed.
---@param id string
---@return integer?
function pubsub:dropped(id) end

---Subscribers now.
---@return integer
function pubsub:len() end

---@class conc.workpool_options
---@field queue integer? Jobs that may wait (2 * n).
---@field results integer? The results channel's capacity (2 * n).
---@field ctx conc.ctx? Ends the pool when canceled.

---The chapter's generic WorkerPool: `n` workers run `fn(job)`.
---@param n integer
---@param fn fun(job: any): any
---@param options conc.workpool_options?
---@return conc.workpool
function conc.workpool(n, fn, options) end

---@class conc.workpool_result
---@field job any The job (absent when it could not travel).
---@field ok boolean
---@field value any `fn`'s result when ok.
---@field err any The error when not ok.
---@field job_error string? Why `job` is absent.

---@class conc.workpool
---@operator len: integer
local workpool = {}

---Queues `job` (copied), waiting while the queue is full.
---@param job any
---@param timeout conc.timeout?
---@return true? ok
---@return conc.reason? reason
function workpool:submit(job, timeout) end

---Queues `job` only if the queue has room.
---@param job any
---@return boolean
function workpool:try_submit(job) end

---The receive-only channel of `conc.workpool_result` tables.
---@return conc.chan.recv_only
function workpool:results() end

---Takes no more jobs, then waits until every queued job is done.
---@return true
function workpool:close() end

---Waits until every worker has stopped.
---@param timeout conc.timeout?
---@return true? ok
---@return conc.reason? reason
function workpool:wait(timeout) end

---Jobs queued, not yet taken by a worker.
---@return integer
function workpool:len() end

---Workers still running.
---@return integer
function workpool:workers() end

---@class conc.stage_options
---@field workers integer? Workers running `fn` (1).
---@field buffer integer? The output's capacity (0).
---@field ctx conc.ctx? Closes the output when canceled.

---A pipeline stage: workers send `fn(v)` for each `v` of `input` on the
---returned channel (`nil` results are dropped: a filter).
---@param input conc.chan
---@param fn fun(v: any): any
---@param options conc.stage_options?
---@return conc.chan.recv_only
function conc.stage(input, fn, options) end

return conc
