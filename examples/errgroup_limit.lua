-- The chapter's "errgroup with limit" program, processWithLimit: at most
-- 10 items processed at once (g:set_limit(10): g:go waits while 10 run),
-- each item fetched from a loopback HTTP server this example starts
-- (luasocket), the first error canceling the others through ctx. Run
-- once with 30 good items, once with one the server refuses.
local conc = require("conc")

-- A tiny HTTP/1.0 server in a worker, one request at a time (the others
-- wait in its listen queue): GET /item-N answers "done item-N", GET
-- /item-bad a 500; until ctx is canceled.
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
      local path = (client:receive("*l") or ""):match("^GET /(%S+)") or ""
      repeat local line = client:receive("*l") until not line or line == ""
      local status, body = "200 OK", "done " .. path
      if path == "item-bad" then status, body = "500 Server Error", "no" end
      client:send(("HTTP/1.0 %s\r\nContent-Length: %d\r\n\r\n%s")
        :format(status, #body, body))
      client:close()
    end
  end
  server:close()
end

-- processItem(ctx, item): an HTTP GET, given up if ctx is canceled.
local function process_item(ctx, base, item, inside, max)
  if ctx:err() then return nil, ctx:err() end
  local n = inside:add(1)
  repeat
    local m = max:load()
  until n <= m or max:compare_and_swap(m, n)
  local http = require("socket.http")
  local body, code = http.request(base .. "/" .. item)
  inside:add(-1)
  if not body then return nil, item .. ": " .. tostring(code) end
  if code ~= 200 then return nil, ("%s: HTTP %d"):format(item, code) end
  return body
end

local function process_with_limit(ctx, base, items)
  local g, gctx = conc.errgroup(ctx)
  g:set_limit(10)  -- Max 10 concurrent workers
  local inside, max = conc.atomic(), conc.atomic()
  for _, item in ipairs(items) do
    g:go(function(item)
      return process_item(gctx, base, item, inside, max)
    end, item)
  end
  local ok, err = g:wait()
  return ok, err, max:load()
end

local server_ctx, stop = conc.with_cancel(conc.background())
local port_ch = conc.chan(1)
local server = conc.go(serve, server_ctx, port_ch)
local base = "http://127.0.0.1:" .. port_ch:recv()

local items = {}
for i = 1, 30 do items[i] = "item-" .. i end
local ok, err, max = process_with_limit(conc.background(), base, items)
print(("processWithLimit(30 items): %s"):format(ok and "<nil>" or err))
print(("at most %d at once, limit 10: %s"):format(max, tostring(max <= 10)))

items[12] = "item-bad"
ok, err = process_with_limit(conc.background(), base, items)
print(("processWithLimit(with a bad item): %s"):format(ok and "<nil>" or err))

stop()
assert(server:join())
