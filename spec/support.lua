-- Helpers shared by the specs.
local support = {}

local cwd = os.getenv("PWD") or "."

-- Runs a Lua script in a fresh lua5.4 process (with conc on its paths);
-- returns its combined output, its exit code, and the seconds it took.
-- shell_prefix (optional) runs first in the same shell, e.g. a ulimit.
function support.run_script(code, timeout_s, shell_prefix)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(("package.path = %q .. package.path\n"):format(
    cwd .. "/lua/?.lua;" .. cwd .. "/lua/?/init.lua;"))
  f:write(("package.cpath = %q .. package.cpath\n"):format(
    (os.getenv("CONC_CPATH") or cwd .. "/build/?.so") .. ";"))
  f:write(code)
  f:close()
  local conc = require("conc")
  local t0 = conc.now()
  -- CONC_LUA: the interpreter of sanitizer runs (a TSan-linked host)
  local lua = os.getenv("CONC_LUA") or "lua5.4"
  local p = io.popen(("%s timeout -k 5 %d %s %s 2>&1; echo \"rc=$?\""):format(
    shell_prefix and (shell_prefix .. ";") or "", timeout_s or 20, lua, path))
  local out = p:read("a")
  p:close()
  os.remove(path)
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return out:gsub("rc=%d+%s*$", ""), rc, conc.now() - t0
end

-- Whether a script may run under `ulimit -v`: ASan and TSan reserve
-- terabytes of address space, so a limit stops them before the script
-- starts (a spec that needs one is pending there; the plain run covers
-- what it checks).
function support.ulimit_v_works()
  return os.getenv("CONC_SANITIZER") == nil
end

-- Code for a script run under `ulimit -v`: fills the address space to
-- its last 256 KB with strings held in the global `fill`, so that no
-- new thread's stack fits (set `fill = nil` and collect to give it back).
support.FILL_ADDRESS_SPACE = [[
  fill = {}
  for _, size in ipairs({1 << 20, 1 << 18}) do
    while true do
      local ok, s = pcall(string.rep, "x", size - 64)
      if not ok then break end
      fill[#fill + 1] = s
    end
  end
]]

-- A coroutine of body, resumed up to its first yield (of `mark`), in a
-- box that holds the only reference to it, for support.abandon.
function support.suspended(body, mark)
  local co = coroutine.create(body)
  local ok, v = coroutine.resume(co)
  assert(ok and v == mark, tostring(v))
  return {co = co}
end

-- Ends a boxed coroutine suspended mid-call as a program may: "close"
-- (coroutine.close, which must succeed) or "drop" (the only reference
-- gone, then a full collection).
function support.abandon(box, ending)
  if ending == "close" then
    assert(coroutine.close(box.co))
  else
    box.co = nil
    collectgarbage()
    collectgarbage()
  end
end

-- Runs body in a coroutine up to its first yield (of "in"), then drops
-- the coroutine with a finalizer that brings it back, and collects:
-- returns it, suspended where it yielded, after the collection that ran
-- the finalizers of what it held (a closer's too).
function support.revived(body)
  local revived
  do
    local box = support.suspended(body, "in")
    setmetatable(box, {__gc = function(h) revived = h.co end})
  end
  collectgarbage()
  collectgarbage()
  assert(revived, "the coroutine was not brought back")
  return revived
end

-- The lines read from a file handle (closed after), as an array.
local function lines_from(handle)
  local t = {}
  for line in handle:lines() do t[#t + 1] = line end
  handle:close()
  return t
end

-- The lines of a file of the repository.
function support.file_lines(path)
  return lines_from(assert(io.open(path)))
end

-- The lines a shell command prints.
function support.command_lines(cmd)
  return lines_from(assert(io.popen(cmd)))
end

-- Joins h and fails the test with the worker's error if it failed.
function support.join_ok(h)
  local r = table.pack(h:join())
  if not r[1] then error("worker failed: " .. tostring(r[2]), 2) end
  return table.unpack(r, 2, r.n)
end

return support
