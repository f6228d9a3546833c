-- The rockspec builds what the Makefile builds: every C source of the
-- module (luarocks compiles only the files it lists, and a missing one
-- shows only when the installed module fails to load).

local lines_of = require("support").command_lines

describe("conc-scm-1.rockspec", function()
  it("lists every C source of the module, and nothing else", function()
    local f = assert(io.open("conc-scm-1.rockspec"))
    local text = f:read("a")
    f:close()
    local listed = {}
    for path in text:gmatch('"(csrc/[%w_/]+%.c)"') do
      listed[#listed + 1] = path
    end
    table.sort(listed)
    local sources = lines_of("ls csrc/core/*.c csrc/lua/*.c | sort")
    assert.is_true(#sources > 20)
    assert.are.same(sources, listed)
  end)
end)

describe("conc-scm-1.rockspec's fields", function()
  local spec = {}
  assert(loadfile("conc-scm-1.rockspec", "t", spec))()

  it("fetches the public repository, never a local path", function()
    assert.are.equal("git+https://github.com/conc-lua/conc.git",
      spec.source.url)
    assert.are.equal("https://github.com/conc-lua/conc",
      spec.description.homepage)
  end)

  it("states the license of the LICENSE file", function()
    local f = assert(io.open("LICENSE"))
    local first = f:read("l")
    f:close()
    assert.are.equal("MIT", spec.description.license)
    assert.are.equal("MIT License", first)
  end)

  it("runs the test suite offline (a command, not luarocks' busted)",
    function()
      assert.are.same({type = "command", command = "make test"}, spec.test)
    end)
end)
