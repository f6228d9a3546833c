-- The chapter's errgroup program, fetchAllURLs: one worker per URL, the
-- bodies in a shared result table, the first error returned (and the
-- group's context canceled). Run against a loopback HTTP server this
-- example starts (luasocket): once with good URLs, once with one whose
-- port nobody listens on.
local conc = require("conc")
local socket = require("socket")

-- A tiny HTTP/1.0 server in a worker: answers GET /path with
-- "hello from /path", until ctx is canceled. Sends its port on `port`.
local function serve(ctx, port)
  local socket = require("socket")
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, p = server:getsockname()
  port:send(tonumber(p))
  server:settimeout(0.02)
  while not ctx:err() do
    local client = server:accept()
    if client then
      client:settimeout(2)
      local path = (client:receive("*l") or ""):match("^GET (%S+)") or "/"
      repeat local line = client:receive("*l") until not line or line == ""
      local body = "hello from " .. path
      client:send(("HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s")
        :format(#body, body))
      client:close()
    end
  end
  server:close()
end

local function fetch_all_urls(ctx, urls)
  -- (the group's context is not used: a luasocket request cannot be
  -- canceled, so a failure stops no fetch already running)
  local g = conc.errgroup(ctx)
  local results = conc.map()  -- results := make([][]byte, len(urls))
  for i, url in ipairs(urls) do
    g:go(function(i, url)
      local http = require("socket.http")
      local body, err = http.request(url)
      if not body then
        return nil, ("fetching %s: %s"):format(url, err)
      end
      results:store(i, body)
    end, i, url)
  end
  local ok, err = g:wait()
  if not ok then return nil, err end
  local out = {}
  for i = 1, #urls do out[i] = results:load(i) end
  return out
end

local server_ctx, stop = conc.with_cancel(conc.background())
local port_ch = conc.chan(1)
local server = conc.go(serve, server_ctx, port_ch)
local port = port_ch:recv()
local base = "http://127.0.0.1:" .. port

local urls = {base .. "/a", base .. "/b", base .. "/c"}
local bodies, err = fetch_all_urls(conc.background(), urls)
if not bodies then
  print("Error: " .. err)
else
  for i, body in ipairs(bodies) do
    print(("%s: %d bytes: %s"):format(urls[i], #body, body))
  end
end

-- A port nobody listens on: bind one, then close it.
local closed = assert(socket.bind("127.0.0.1", 0))
local _, dead_port = closed:getsockname()
closed:close()
urls[2] = "http://127.0.0.1:" .. dead_port .. "/b"
bodies, err = fetch_all_urls(conc.background(), urls)
assert(bodies == nil)
print("Error: " .. err)

stop()
assert(server:join())
