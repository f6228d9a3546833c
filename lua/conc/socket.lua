-- conc.socket: luasocket TCP sockets that travel between workers.
--
-- Requiring this module gives luasocket's TCP socket types a
-- __conc_export hook (see docs/API.md, "Values that travel"), so a socket
-- can be passed to conc.go, sent on a channel or stored in a conc.map.
-- The socket moves: the sender's object gives its descriptor up when
-- the value is encoded (it then reads as closed), and the receiver gets
-- a socket of the same kind around that descriptor, which it owns and
-- closes (explicitly or when collected).
local socket = require("socket")

local M = {}

-- The socket types that can move, by their luasocket class names.
local classes = {"tcp{client}", "tcp{server}", "tcp{master}"}

local registry = debug.getregistry()

-- Rebuilds a socket of the given class around the descriptor of an
-- exported one: the rebuilder named by the hook below.
function M.adopt(exported)
  local mt = registry[exported.class]
  if type(mt) ~= "table" then
    return nil, "unknown socket class " .. tostring(exported.class)
  end
  local s, err = socket.tcp()
  if not s then return nil, err end
  s:close()             -- a fresh socket's own descriptor is not needed
  s:setfd(exported.fd)  -- luasocket has no constructor from a descriptor,
  debug.setmetatable(s, mt)  -- nor one of a given class: set both
  return s
end

-- The hook: the descriptor and the class travel; this state's object
-- lets go of the descriptor, so its close or collection leaves the
-- receiver's socket open.
local function export(s)
  local fd = s:getfd()
  if fd == nil or fd < 0 then error("conc.socket: socket is closed", 0) end
  local class = tostring(s):match("^(tcp{%a+})")
  s:setfd(-1)
  return {fd = math.tointeger(fd) or fd, class = class}, "conc.socket.adopt"
end

for _, class in ipairs(classes) do
  local mt = registry[class]
  if type(mt) == "table" then mt.__conc_export = export end
end

return M
