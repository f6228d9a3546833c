-- Embedding conc in a C host (docs/embedding.md): the libraries, the C
-- API of conc_lua.h and the example host, each checked by its make
-- target; this spec makes them part of `make test`. LD_PRELOAD is
-- dropped for the build: under `make asan` it holds libasan, which the
-- compiler and linker must not run with.

local function make(targets)
  local p = assert(io.popen("env -u LD_PRELOAD make -s " .. targets
    .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

describe("embedding", function()
  it("libconc exports exactly conc.h and conc_lua.h, and its C tests pass",
    function()
      local ok, out = make("lib-check")
      assert(ok, out)
      assert.matches("libconc.so exports the %d+ names of conc.h and "
        .. "conc_lua.h, nothing else", out)
      assert.matches("libconc.a exports the %d+ names", out)
      assert.matches("links with libconc.a", out)
      assert.matches("core.so exports luaopen_conc_core only", out)
      assert.matches("test_embed: %d+ passed, 0 failed", out)
    end)

  it("the example host's readings are each consumed once, static and "
    .. "shared", function()
      local ok, out = make("host-example")
      assert(ok, out)
      local _, n = out:gsub("host: 2000 readings produced, 2000 consumed "
        .. "once each, 0 missing, 0 duplicated", "")
      assert.are.equal(2, n, out)
    end)
end)
