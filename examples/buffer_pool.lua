-- The chapter's sync.Pool program: reuse buffers instead of allocating
-- one per request. A pool belongs to one lua_State, so each worker makes
-- its own; here four workers each process requests with pooled buffers.
local conc = require("conc")

local function worker(requests, id)
  local created = 0
  local pool = conc.pool{new = function()
    created = created + 1
    return {}
  end}
  local function process_request(data)
    local buf = pool:get()
    -- Reset the buffer when done and return it to the pool.
    local _ <close> = setmetatable({}, {__close = function()
      for i = #buf, 1, -1 do buf[i] = nil end
      pool:put(buf)
    end})
    buf[#buf + 1] = data
    buf[#buf + 1] = " (processed by worker " .. id .. ")"
    return table.concat(buf)
  end
  local n = 0
  for data in requests:range() do
    process_request(data)
    n = n + 1
  end
  return n, created
end

local requests = conc.chan(64)
local workers = {}
for id = 1, 4 do workers[id] = conc.go(worker, requests, id) end
for i = 1, 1000 do requests:send("request " .. i) end
requests:close()
for id, h in ipairs(workers) do
  local _, n, created = assert(h:join())
  print(("worker %d: %d requests, %d buffers created"):format(id, n, created))
end
