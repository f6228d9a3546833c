---@meta conc
-- LuaLS definitions for the module `conc` (what `require("conc")` returns).
-- These files are read by the Lua language server, never run: the
-- implementation is the C module conc.core and lua/conc/init.lua.
-- docs/API.md is the reference; spec/api_coverage_spec.lua fails when a
-- public name of the loaded module is missing here or here but absent.
-- The object types live in the other files of this folder, one per area.

---Go's concurrency for Lua 5.4: workers on OS threads, channels, select.
---@class conc
---@field _VERSION string The version, `"conc scm"`.
---@field signal conc.signal Go's os/signal: notify, stop, context.
local conc = {}

---A duration in seconds (floats allowed) or a context that bounds a wait.
---`nil`: wait forever; `0` or less: do not wait.
---@alias conc.timeout number|conc.ctx

---The reason a bounded wait failed: `"timeout"`, `"context canceled"`,
---`"context deadline exceeded"`.
---@alias conc.reason string

---@alias conc.deadlock_mode
---| "exit"  # print the report and exit with status 2 (the default)
---| "error" # raise the report in the main script's wait
---| "off"   # no check

---Sets what happens when every worker and the main script wait forever.
---@param mode conc.deadlock_mode
function conc.set_deadlock_mode(mode) end

---How many threads run tasks at once (Go's GOMAXPROCS; at start the
---CPUs online, or `CONC_MAXPROCS` from the environment). Sets it to `n`
---(1..64) when given; returns the value before.
---@param n integer?
---@return integer previous
function conc.set_maxprocs(n) end

---In a task: lets the other runnable tasks run first, then goes on (Go's
---runtime.Gosched). In the main script: runs one ready task, if any.
function conc.gosched() end

---One entry per live worker and one for the main script (`id` 0).
---@return conc.worker_info[]
function conc.workers() end

---Counters of the runtime.
---@return conc.stats
function conc.stats() end

---@class conc.worker_info
---@field id integer The worker's id, 0 for the main script, -1 for finalizers.
---@field state "running"|"blocked"|"waiting"|"sleeping"
---@field waiting_in string? The blocking call it is in (`"chan receive"`).
---@field object string? The address of the object it waits on.
---@field where string? Where a blocked worker went to sleep (`file:line`).
---@field age number Seconds since it started.

---@class conc.stats
---@field workers integer Live workers (tasks).
---@field tasks integer Live tasks (the same as `workers`).
---@field threads integer Threads that run tasks (scheduler's, locked tasks').
---@field idle_threads integer Of those, the idle ones.
---@field procs integer How many may run tasks at once (`conc.set_maxprocs`).
---@field run_queues integer[] Runnable tasks queued on each processor.
---@field global_queue integer Runnable tasks in the global queue.
---@field turns integer Turns the scheduler has given tasks so far.
---@field steals integer Tasks one processor took from another's queue.
---@field preemptions integer Tasks asked to yield after 10 ms of computing.
---@field handoffs integer Processors handed on by a thread blocked in C.
---@field helped integer Turns the main script's thread gave tasks while it waited.
---@field thread_blocks integer Waits of tasks that could not yield and blocked their thread.
---@field thread_failures integer Threads conc could not start (`CONC_MAXTHREADS`, the system).
---@field spinning integer Threads looking for work right now.
---@field messages integer Messages delivered on channels so far.
---@field heap_bytes integer What the workers' Lua heaps hold.
---@field objects table<string, integer> Live conc objects by type name.

return conc
