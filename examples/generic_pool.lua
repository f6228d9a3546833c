-- The chapter's generic WorkerPool[T, R], made real: conc.workpool is
-- a shared object (any worker may submit), its queue is 2 * workers
-- (backpressure), and a failed job is a result, never lost.
local conc = require("conc")

local pool = conc.workpool(3, function(n)
  conc.sleep(0.01) -- simulate work
  return n * n
end)
local results = pool:results()

-- Submit from a worker, as a producer would, then close the pool.
conc.go(function(pool)
  for i = 1, 10 do pool:submit(i) end
  pool:close()
end, pool)

local squares = {}
for r in results:range() do squares[#squares + 1] = r.value end
table.sort(squares)
for _, v in ipairs(squares) do print(v) end
