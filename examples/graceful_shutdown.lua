-- The chapter's graceful shutdown: an HTTP server (luasocket, served by a
-- pool of workers) that SIGINT or SIGTERM drains, with a 30 s deadline.
--
-- Go's program waits for Ctrl-C; this one runs unattended: once it
-- serves, a client worker makes a few requests, starts a slow one, and
-- while that one is in flight sends the process SIGTERM. The server
-- stops accepting, lets the slow request finish (the drain), and stops.
-- Besides Go's three lines it prints what the client sees.
--
-- Each serving worker listens on the same port (SO_REUSEPORT: the kernel
-- spreads connections over them), so no socket has to cross workers.
local conc = require("conc")
local socket = require("socket")

local WORKERS = 4

-- A free loopback port (Go's program takes :8080, which may be in use).
local probe = assert(socket.bind("127.0.0.1", 0))
local _, port = probe:getsockname()
probe:close()

-- One connection: reads the request, answers with Connection: close.
-- /slow takes 0.5 s and says when it starts (on `inflight`).
local function handle(c, id, inflight)
  c:settimeout(5)
  local line = c:receive("*l")
  repeat local h = c:receive("*l") until h == nil or h == ""
  local path = line and line:match("^%u+ (%S+)") or "/"
  local body = ("hello from worker %d\n"):format(id)
  if path == "/slow" then
    inflight:send(true)
    conc.sleep(0.5)
    body = ("slow answer from worker %d\n"):format(id)
  end
  c:send(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" ..
          "Connection: close\r\n\r\n%s"):format(#body, body))
  c:close()
end

-- A serving worker: accepts until `serving` is canceled (srv.Shutdown
-- closes the listeners), finishing the request it is in first.
local function serve(id, port_, serving, ready, inflight, wg)
  local sock = require("socket")
  local srv = sock.tcp4()
  assert(srv:setoption("reuseaddr", true))
  assert(srv:setoption("reuseport", true))
  assert(srv:bind("127.0.0.1", port_))
  assert(srv:listen(64))
  srv:settimeout(0.05)  -- looks at `serving` between accepts
  ready:send(id)
  while not serving:err() do
    local c = srv:accept()
    if c then handle(c, id, inflight) end
  end
  srv:close()
  wg:done()
end

-- Start the server: a worker pool listening on the port.
local serving, close_listeners = conc.with_cancel(conc.background())
local ready, inflight = conc.chan(WORKERS), conc.chan(1)
local servers = conc.waitgroup()
for id = 1, WORKERS do
  servers:add(1)
  conc.go(serve, id, port, serving, ready, inflight, servers)
end
for _ = 1, WORKERS do ready:recv() end

-- Channel to signal shutdown.
local done = conc.chan()

-- Handle shutdown signals.
local sig_chan = conc.chan(1)
conc.signal.notify(sig_chan, "SIGINT", "SIGTERM")
conc.go(function()
  sig_chan:recv()
  print("\nShutting down...")
  -- Shutdown context with a 30 s timeout: stop accepting, then wait
  -- for the requests in flight.
  local ctx, cancel <close> = conc.with_timeout(conc.background(), 30)
  close_listeners()
  local ok, err = servers:wait(ctx)
  if not ok then print("Server shutdown error: " .. err) end
  done:close()
end)

print("Server starting on :" .. port)

-- The client: a few requests, then a slow one during which the process
-- gets SIGTERM (as from `kill -TERM <pid>` or a service manager).
local client = conc.go(function(url, inflight_)
  local http = require("socket.http")
  for _ = 1, 3 do
    local body, code = http.request(url .. "/hello")
    io.write(("client: GET /hello -> %s %s"):format(code, body))
  end
  local slow = conc.go(function()
    local body, code = require("socket.http").request(url .. "/slow")
    return code, body
  end)
  inflight_:recv()  -- the slow request is being served
  io.popen("kill -TERM $PPID"):close()  -- $PPID: this process
  local _, code, body = slow:join()
  io.write(("client: GET /slow during shutdown -> %s %s"):format(code, body))
end, "http://127.0.0.1:" .. port, inflight)

-- ListenAndServe returns once the listeners are closed.
servers:wait()
done:recv()
client:join()
print("Server stopped")
