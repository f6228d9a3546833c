-- The chapter's graceful shutdown: an HTTP server (luasocket) whose
-- accept loop hands each connection to a pool of workers, drained by
-- SIGINT or SIGTERM with a 30 s deadline.
--
-- Go's program waits for Ctrl-C; this one runs unattended: once it
-- serves, a client worker makes a few requests, starts a slow one, and
-- while that one is in flight sends the process SIGTERM. The server
-- stops accepting, lets the slow request finish (the drain), and stops.
-- Besides Go's three lines it prints what the client sees.
--
-- Sockets cross workers: requiring conc.socket lets a luasocket TCP
-- socket travel (the listener to the accept loop, each accepted
-- connection to the pool's worker that serves it; the sender's object
-- gives its descriptor up).
local conc = require("conc")
local socket = require("socket")
require("conc.socket")

local WORKERS = 4

-- Go's program takes :8080, which may be in use: a free loopback port.
local listener = assert(socket.bind("127.0.0.1", 0))
local _, port = listener:getsockname()

-- One connection (a job of the pool): reads the request, answers with
-- Connection: close. /slow takes 0.5 s and says when it starts.
local function handle(job)
  local c, inflight = job.conn, job.inflight
  c:settimeout(5)
  local line = c:receive("*l")
  repeat local h = c:receive("*l") until h == nil or h == ""
  local path = line and line:match("^%u+ (%S+)") or "/"
  local body = ("hello from worker %d\n"):format(conc.id())
  if path == "/slow" then
    inflight:send(true)
    conc.sleep(0.5)
    body = ("slow answer from worker %d\n"):format(conc.id())
  end
  c:send(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" ..
          "Connection: close\r\n\r\n%s"):format(#body, body))
  c:close()
  return path
end

local pool = conc.workpool(WORKERS, handle)
local inflight = conc.chan(1)

-- A failed request is a result of the pool, never fatal: report it.
conc.go(function(results)
  for r in results:range() do
    if not r.ok then print("request failed: " .. tostring(r.err)) end
  end
end, pool:results())

-- The accept loop (ListenAndServe): hands connections to the pool until
-- `serving` ends, then closes the listener.
local serving, stop_accepting = conc.with_cancel(conc.background())
local accepting = conc.go(function(srv, p, ctx, flight)
  srv:settimeout(0.05)  -- looks at ctx between accepts
  while not ctx:err() do
    local c = srv:accept()
    if c then p:submit({conn = c, inflight = flight}) end
  end
  srv:close()
end, listener, pool, serving, inflight)

-- Channel to signal shutdown.
local done = conc.chan()

-- Handle shutdown signals.
local sig_chan = conc.chan(1)
conc.signal.notify(sig_chan, "SIGINT", "SIGTERM")
conc.go(function(p)
  sig_chan:recv()
  print("\nShutting down...")
  -- Shutdown context with a 30 s timeout: stop accepting, then let the
  -- pool finish the requests it has (srv.Shutdown).
  local ctx, cancel <close> = conc.with_timeout(conc.background(), 30)
  stop_accepting()
  accepting:wait()
  conc.go(function(q) q:close() end, p)  -- no more jobs; queued ones run
  local ok, err = p:wait(ctx)
  if not ok then print("Server shutdown error: " .. err) end
  done:close()
end, pool)

print("Server starting on :" .. port)

-- The client: a few requests, then a slow one during which the process
-- gets SIGTERM (as from `kill -TERM <pid>` or a service manager).
local client = conc.go(function(url, flight)
  local http = require("socket.http")
  for _ = 1, 3 do
    local body, code = http.request(url .. "/hello")
    io.write(("client: GET /hello -> %s %s"):format(code, body))
  end
  local slow = conc.go(function()
    local body, code = require("socket.http").request(url .. "/slow")
    return code, body
  end)
  flight:recv()  -- the slow request is being served
  io.popen("kill -TERM $PPID"):close()  -- $PPID: this process
  local _, code, body = slow:join()
  io.write(("client: GET /slow during shutdown -> %s %s"):format(code, body))
end, "http://127.0.0.1:" .. port, inflight)

-- ListenAndServe returns once the listener is closed.
accepting:wait()
done:recv()
client:join()
print("Server stopped")
