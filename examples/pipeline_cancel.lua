-- The chapter's pipeline with a context: generateWithContext and
-- squareWithContext stop as soon as ctx is canceled, so a consumer that
-- takes only what it needs leaves no worker behind.
local conc = require("conc")

local function generate_with_context(ctx, ...)
  local out = conc.chan()
  conc.go(function(ctx, out, ...)
    for _, n in ipairs({...}) do
      -- select { case <-ctx.Done(): return; case out <- n: }
      if not out:send(n, ctx) then break end
    end
    out:close()
  end, ctx, out, ...)
  return out
end

local function square_with_context(ctx, input)
  return conc.stage(input, function(n) return n * n end, {ctx = ctx})
end

local ctx, cancel = conc.with_cancel(conc.background())
local squares = square_with_context(ctx,
  generate_with_context(ctx, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10))

-- Take the first three squares, then cancel the rest of the pipeline.
for _ = 1, 3 do print((squares:recv())) end
cancel()
for _ in squares:range() do end -- closes once its worker has stopped

local deadline = conc.now() + 5
while #conc.workers() > 1 and conc.now() < deadline do conc.sleep(0.001) end
print("canceled; workers left:", #conc.workers() - 1)
