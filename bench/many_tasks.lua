-- B19 and B20's workload: N tasks parked on a channel receive at once,
-- then all released (the channel closed) and joined. Returns the seconds
-- from the first spawn to the last join and the peak RSS in kB.
return function(conc, N)
  local function status(field)
    local f = assert(io.open("/proc/self/status"))
    local s = f:read("a")
    f:close()
    return tonumber(s:match(field .. ":%s*(%d+) kB"))
  end
  local park, ready = conc.chan(), conc.chan(N)
  local t0 = conc.now()
  local hs = {}
  for i = 1, N do
    hs[i] = conc.go(function(p, r, i)
      r:send(true)
      p:recv()
      return i
    end, park, ready, i)
  end
  for _ = 1, N do ready:recv() end  -- every task has run up to its receive
  park:close()
  local sum = 0
  for i = 1, N do
    local ok, v = hs[i]:join()
    if not ok then error("task failed: " .. tostring(v)) end
    sum = sum + v
  end
  local t = conc.now() - t0
  assert(sum == N * (N + 1) // 2)
  io.stderr:write(string.format("many tasks: N=%d %.3f s, VmHWM %d kB\n", N,
                                t, status("VmHWM")))
  return t, status("VmHWM")
end
