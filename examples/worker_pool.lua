-- The chapter's worker pool: 5 workers take 20 jobs from a buffered jobs
-- channel, each "works" 100 ms, and send a result; a closer waits for
-- every worker, then closes results; the main script prints them.
-- Run: make demo   (or lua5.4 examples/worker_pool.lua with conc installed)
local conc = require("conc")

local function worker(id, jobs, results)
  for job in jobs:range() do
    conc.sleep(0.1) -- simulate work
    results:send({
      job_id = job.id,
      output = string.format("Worker %d processed: %s", id, job.payload),
    })
  end
end

local num_workers, num_jobs = 5, 20
local jobs, results = conc.chan(num_jobs), conc.chan(num_jobs)

-- Start workers
local workers = {}
for i = 1, num_workers do
  workers[i] = conc.go(worker, i, jobs, results)
end

-- Send jobs
for i = 1, num_jobs do
  jobs:send({id = i, payload = string.format("task-%d", i)})
end
jobs:close()

-- Wait for the workers, then close results
local closer = conc.go(function(hs, res)
  for _, h in ipairs(hs) do assert(h:join()) end
  res:close()
end, workers, results)

-- Collect results
for result in results:range() do
  print(string.format("Job %d: %s", result.job_id, result.output))
end
assert(closer:join()) -- it may still be returning: let it finish
