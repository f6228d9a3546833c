-- Every ```lua block of README.md and docs/*.md runs: each in a fresh
-- lua5.4 process with the built module, as a script that begins with
-- `local conc = require("conc")` (unless the block requires conc
-- itself). A line `print(...)  --> text` says what the block prints:
-- the output must hold each such text as a line, in that order. A block
-- whose fence reads ```lua -- fragment is part of a larger program: it
-- is only compiled (load), to prove it parses.
local support = require("support")

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

-- The Lua blocks of a markdown text: {code =, fragment =, line =}.
local function lua_blocks(text)
  local blocks, line, open = {}, 0, nil
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line + 1
    if open then
      if l:match("^```%s*$") then
        blocks[#blocks + 1] = open
        open = nil
      else
        open.code = open.code .. l .. "\n"
      end
    else
      local info = l:match("^```lua(.*)$")
      if info then
        assert(info == "" or info:match("^ %-%- fragment"),
          ("line %d: a ```lua fence takes only ' -- fragment: why'"):format(line))
        open = {code = "", fragment = info ~= "", line = line + 1}
      end
    end
  end
  assert(open == nil, "a ```lua block is not closed")
  return blocks
end

-- The lines a block says it prints, in order.
local function expected_output(code)
  local out = {}
  for l in code:gmatch("[^\n]+") do
    local shown = l:match("^%s*print%b()%s*%-%->%s?(.*)$")
    if shown then out[#out + 1] = shown end
  end
  return out
end

-- Whether the lines of `expected` appear in `output`, in order.
local function in_order(output, expected)
  local pos = 1
  for _, want in ipairs(expected) do
    local found = false
    while true do
      local s, e = output:find("[^\n]*", pos)
      if not s or s > #output then break end
      pos = e + 2
      if output:sub(s, e) == want then found = true; break end
    end
    if not found then return false, want end
  end
  return true
end

local files = {"README.md"}
for _, path in ipairs(support.command_lines("ls docs/*.md")) do
  files[#files + 1] = path
end

describe("the Lua blocks of the docs", function()
  it("the checker reads fences, fragments and shown output", function()
    local blocks = lua_blocks(table.concat({
      "text", "```lua", "print(1)  --> 1", "```",
      "```lua -- fragment: needs x", "x:go()", "```"}, "\n"))
    assert.are.equal(2, #blocks)
    assert.is_false(blocks[1].fragment)
    assert.is_true(blocks[2].fragment)
    assert.are.same({"1"}, expected_output(blocks[1].code))
    assert.is_true(in_order("a\n1\nb\n", {"1", "b"}))
    assert.is_false(in_order("b\n1\n", {"1", "b"}))
  end)

  for _, path in ipairs(files) do
    for _, b in ipairs(lua_blocks(read(path))) do
      local where = ("%s:%d"):format(path, b.line)
      if b.fragment then
        it(where .. " (a fragment) compiles", function()
          local fn, err = load(b.code, "=" .. where)
          assert(fn, err)
        end)
      else
        it(where .. " runs", function()
          local code = b.code
          if not code:find('require%("conc"%)') then
            code = 'local conc = require("conc")\n' .. code
          end
          local out, rc = support.run_script(code, 20)
          assert(rc == 0, ("%s failed (status %s):\n%s"):format(where,
            tostring(rc), out))
          local ok, missing = in_order(out, expected_output(b.code))
          assert(ok, ("%s: expected the line %q in its output:\n%s")
            :format(where, tostring(missing), out))
        end)
      end
    end
  end
end)
