---@meta
-- LuaLS definitions: workers, channels, select, merge (see conc.lua).

---@class conc
local conc = {}

---Options of `conc.go`, a plain table before `fn`.
---@class conc.go_options
---@field memory_limit integer? Bytes the worker's Lua heap may grow by.
---@field locked boolean? A thread of its own for its whole life (LockOSThread).

---Runs `fn(...)` in a worker: a light task with its own `lua_State`,
---scheduled over a few threads (see `conc.set_maxprocs`).
---`fn` and the arguments are copied by the codec (conc objects by
---reference). Raises when a value cannot travel; returns a fail tuple
---when the system refuses a thread.
---@param fn function
---@param ... any
---@return conc.worker? handle
---@return string? message
---@return "spawn"? name
---@overload fun(options: conc.go_options, fn: function, ...: any): conc.worker?, string?, "spawn"?
function conc.go(fn, ...) end

---The id of the calling worker; `0` in the main script.
---@return integer
function conc.id() end

---A handle on a worker started by `conc.go` (or `wg:go`).
---@class conc.worker
local worker = {}

---Waits for the worker to end: `true` and its results (copied), or
---`false` and its error (a string error has the traceback appended).
---@return boolean ok
---@return any ...
function worker:join() end

---Waits until the worker has ended, without joining it.
---@param timeout conc.timeout?
---@return boolean done
---@return conc.reason? reason
function worker:wait(timeout) end

---A receive-only channel closed when the worker ends.
---@return conc.chan.recv_only
function worker:done() end

---The worker's id, unique in the process, from 1.
---@return integer
function worker:id() end

---@alias conc.worker_status "running"|"done"|"failed"

---Where the worker is.
---@return conc.worker_status
function worker:status() end

---A channel with Go's semantics: capacity 0 (the default) is a
---rendezvous, n > 0 a FIFO buffer of n values.
---@param capacity integer?
---@return conc.chan
function conc.chan(capacity) end

---A channel with Go's semantics, shared by reference between workers.
---A `<close>` variable holding one closes it (Go's `defer close(ch)`).
---@class conc.chan
---@operator len: integer
local chan = {}

---Sends `v` (copied), waiting while the channel is full. Raises on a
---closed or receive-only channel.
---@param v any
---@param timeout conc.timeout?
---@return true? ok
---@return conc.reason? reason
function chan:send(v, timeout) end

---Receives a value: `v, true`; `nil, false` once closed and drained;
---`nil, nil, reason` when the timeout passes or the context ends.
---@param timeout conc.timeout?
---@return any v
---@return boolean? ok
---@return conc.reason? reason
function chan:recv(timeout) end

---Sends only if it would not block.
---@param v any
---@return boolean sent
function chan:try_send(v) end

---Receives only if it would not block: `v, true`, `nil, false` (closed
---and drained) or `nil, nil, "would block"`.
---@return any v
---@return boolean? ok
---@return "would block"? reason
function chan:try_recv() end

---Closes the channel. Raises if it is closed already or receive-only.
function chan:close() end

---Values buffered now.
---@return integer
function chan:len() end

---The capacity.
---@return integer
function chan:cap() end

---Go's `for v := range ch`: `for v in ch:range() do ... end` receives
---until the channel is closed and drained (or a `nil` value arrives).
---@return fun(ch: conc.chan): any iterator
---@return conc.chan ch
function chan:range() end

---A receive-only view of this channel (Go's `<-chan T`).
---@return conc.chan.recv_only
function chan:recv_only() end

---A receive-only channel (Go's `<-chan T`): what conc hands out
---(`h:done()`, `ctx:done()`, `timer.C`, `conc.after`) and `ch:recv_only()`.
---Sending on it or closing it raises. (At run time the channels conc
---owns are `conc.chan`s, refused for sending; the views that
---`ch:recv_only()`, `conc.stage` and `pool:results()` make are named
---`conc.chan.recv_only`.)
---@class conc.chan.recv_only: conc.chan
---@operator len: integer

---A case of `conc.select`: `{"recv", ch}` or `{"send", ch, value}`. A
---`nil` channel is never ready.
---@alias conc.select_case {[1]: "recv", [2]: conc.chan?}|{[1]: "send", [2]: conc.chan?, [3]: any}

---The argument of `conc.select`: an array of cases and options.
---@class conc.select_cases
---@field [integer] conc.select_case?
---@field n integer? The number of cases, when the array may end with nils.
---@field default boolean? Never block: returns `"default"`.
---@field timeout number? Give up after this many seconds: `"timeout"`.

---Go's `select`: waits until a case can proceed, performs one chosen
---at random among the ready ones, and returns its index (and for a
---receive, the value and `ok`), or `"default"`, or `"timeout"`.
---@param cases conc.select_cases
---@return integer|"default"|"timeout" i
---@return any v
---@return boolean? ok
function conc.select(cases) end

---Go's fan-in: a receive-only channel of every value of every input,
---closed once all are closed and drained, or `ctx` is canceled.
---@param inputs conc.chan[]
---@param ctx conc.ctx?
---@return conc.chan.recv_only
function conc.merge(inputs, ctx) end

return conc
