-- The chapter's sync.Once: a Database whose Connect opens the connection
-- exactly once, however many workers call it at the same time.
--
-- Database is a class defined in a module (here in package.preload, whose
-- Lua loaders travel with conc.go), so a Database instance can be passed
-- to workers: its fields are copied, its conc.once and conc.map are
-- shared, and each worker gets the Database class by name.
local conc = require("conc")

package.preload["database"] = function()
  local conc = require("conc")
  local Database = {}
  Database.__index = Database

  function Database.new(dsn)
    return setmetatable({dsn = dsn, once = conc.once(), stats = conc.map()},
                        Database)
  end

  -- Go's sql.Open: slow, and it must run once.
  local function open(db)
    print("opening connection to " .. db.dsn)
    conc.sleep(0.1)
    db.stats:store("opened", (db.stats:load("opened") or 0) + 1)
    return {dsn = db.dsn, id = 1}
  end

  -- Connect returns the one connection; callers that arrive while it is
  -- being opened wait for it, as db.once.Do makes them.
  function Database:connect()
    return self.once:call(open, self)
  end

  return Database
end

local Database = require("database")
local db = Database.new("postgres://localhost/app")

local workers = {}
for id = 1, 5 do
  workers[id] = conc.go(function(database)
    local conn = database:connect()
    return conn.id
  end, db)
end
for id, h in ipairs(workers) do
  local _, conn_id = assert(h:join())
  print(("worker %d: using connection #%d"):format(id, conn_id))
end
print("connections opened: " .. db.stats:load("opened"))
