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

---One entry per live worker and one for the main script (`id` 0).
---@return conc.worker_info[]
function conc.workers() end

---Counters of the runtime.
---@return conc.stats
function conc.stats() end

---@class conc.worker_info
---@field id integer The worker's id, 0 for the main script.
---@field state "running"|"blocked"|"waiting"|"sleeping"
---@field waiting_in string? The blocking call it is in (`"chan receive"`).
---@field object string? The address of the object it waits on.
---@field where string? Where a blocked worker went to sleep (`file:line`).
---@field age number Seconds since it started.

---@class conc.stats
---@field workers integer Live workers.
---@field threads integer Pool threads, busy or idle.
---@field idle_threads integer Idle pool threads.
---@field messages integer Messages delivered on channels so far.
---@field heap_bytes integer What the workers' Lua heaps hold.
---@field objects table<string, integer> Live conc objects by type name.

return conc
