-- README.md's programs run as shown: the first program, and the worker
-- error whose output the README prints (run as x.lua in a directory of
-- its own, so the chunk names read as in the README).
local support = require("support")

local cwd = os.getenv("PWD") or "."

-- The text of README.md's section `title` (up to the next "## ").
local function section(title)
  local text = table.concat(support.file_lines("README.md"), "\n") .. "\n"
  local body = text:match("\n## " .. title .. "\n(.-)\n## ")
  assert(body, "README.md has no section " .. title)
  return body
end

-- The fenced blocks of a text, in order, as {lang =, code =}.
local function blocks(text)
  local out = {}
  for lang, code in text:gmatch("```(%w*)\n(.-)```") do
    out[#out + 1] = {lang = lang, code = code}
  end
  return out
end

-- Runs code as x.lua in a fresh directory; its output and exit code.
local function run_as_x(code)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local f = assert(io.open(dir .. "/x.lua", "w"))
  f:write(code)
  f:close()
  local cmd = ("cd %s && LUA_PATH_5_4='%s/lua/?.lua;%s/lua/?/init.lua' " ..
    "LUA_CPATH_5_4='%s' timeout 20 %s x.lua 2>&1; echo \"rc=$?\"")
    :format(dir, cwd, cwd, os.getenv("CONC_CPATH") or cwd .. "/build/?.so",
            os.getenv("CONC_LUA") or "lua5.4")
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  os.execute("rm -rf " .. dir)
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return out:gsub("rc=%d+%s*$", ""), rc
end

describe("README.md", function()
  it("the first program is short and prints the five squares", function()
    local b = blocks(section("A first program"))[1]
    assert.are.equal("lua", b.lang)
    local _, nlines = b.code:gsub("\n", "")
    assert.is_true(nlines <= 16, nlines .. " lines")
    local out, rc = run_as_x(b.code)
    assert.are.equal(0, rc, out)
    local seen = {}
    for id, n, sq in out:gmatch("worker (%d): (%d) squared is (%d+)") do
      assert.is_true(tonumber(id) >= 1 and tonumber(id) <= 3)
      assert.are.equal(tonumber(n) ^ 2, tonumber(sq))
      seen[#seen + 1] = tonumber(n)
    end
    table.sort(seen)
    assert.are.same({1, 2, 3, 4, 5}, seen)
  end)

  it("a worker's error prints what the README shows", function()
    local bs = blocks(section("Errors"))
    local code, shown
    for i, b in ipairs(bs) do
      if b.lang == "lua" then code, shown = b.code, bs[i + 1].code end
    end
    assert.is_truthy(code, "no lua block in Errors")
    local out, rc = run_as_x(code)
    assert.are.equal(0, rc, out)
    assert.are.equal(shown, out)
  end)
end)
