-- scripts/luacats.lua, the checker of the LuaLS definitions (Debian 12
-- has no lua-language-server to run), and what it says of the examples
-- and of docs' Lua blocks: they only call names the definitions declare.
local cats = dofile("scripts/luacats.lua")
local support = require("support")

-- Parses a definition file given as text; returns the model and errors.
local function parse(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  local model, errors = cats.parse_files({path})
  os.remove(path)
  for i, e in ipairs(errors) do errors[i] = e:gsub("^[^:]*:", "") end
  return model, errors
end

local function meta_model()
  local files = support.command_lines("ls lua/conc/meta/*.lua")
  local model, errors = cats.parse_files(files)
  assert.are.same({}, errors)
  return model
end

describe("the LuaCATS checker", function()
  it("parses LuaLS type expressions", function()
    for _, ty in ipairs{
      "integer", "conc.chan?", "string[]", "(string|number)[]",
      "table<string, integer>", "fun()", "fun(a: integer, b?: string): boolean",
      "fun(...: any): integer, string", "fun(): ok: boolean",
      "{[1]: \"recv\", [2]: conc.chan?}", "{n: integer, [string]: any}",
      "'a'|'b'|3", "`T`",
    } do
      local node, rest = cats.parse_type(ty)
      assert(node, ty .. ": " .. tostring(rest))
      assert.are.equal("", rest, ty)
    end
  end)

  it("refuses malformed type expressions", function()
    for _, ty in ipairs{"fun(", "integer|", "table<string", "{a integer}",
        "(string", "fun(a:)", "[]", "'open"} do
      assert.is_nil(cats.parse_type(ty), ty)
    end
  end)

  it("stops a type at its name or comment", function()
    local node, rest = cats.parse_type("true? ok the worker's result")
    assert.are.equal("optional", node.k)
    assert.are.equal("ok the worker's result", rest)
  end)

  it("reports undefined types, unknown tags and stray code", function()
    local _, errors = parse(table.concat({
      "---@meta",
      "---@class a.thing",
      "---@field x a.missing",
      "local thing = {}",
      "---@parm x integer",
      "function thing:f() end",
      "thing.y = 1",
    }, "\n"))
    assert.are.same({
      "5: unknown annotation @parm",
      "7: not a declaration: thing.y = 1",
      "3: undefined type a.missing",
    }, errors)
  end)

  it("matches each @param to a parameter of the function", function()
    local _, errors = parse(table.concat({
      "---@meta",
      "---@class a.thing",
      "local thing = {}",
      "---@param x integer",
      "---@param z integer",
      "function thing:f(x, y) end",
    }, "\n"))
    assert.are.same({
      "6: thing:f: parameter y has no @param",
      "6: thing:f: @param z is not a parameter",
    }, errors)
  end)

  it("knows generics only in their block, and alias members", function()
    local model, errors = parse(table.concat({
      "---@meta",
      "---@alias a.mode",
      "---| \"on\" # comment",
      "---| \"off\"",
      "---@class a.thing",
      "local thing = {}",
      "---@generic T",
      "---@param x T",
      "---@return T",
      "function thing.id(x) end",
      "",
      "---@param y T",
      "---@param m a.mode",
      "function thing.bad(y, m) end",
    }, "\n"))
    assert.are.same({"12: undefined type T"}, errors)
    assert.truthy(model.classes["a.thing"].functions.id)
  end)

  it("requires ---@meta first", function()
    local _, errors = parse("---@class a.thing\n")
    assert.are.same({"1: a definition file starts with ---@meta"}, errors)
  end)

  it("finds conc's definition files well formed", function()
    local model = meta_model()
    assert.truthy(model.classes["conc.chan"].methods.send)
    assert.truthy(model.classes.conc.functions.go)
  end)
end)

describe("the light type check of code using conc", function()
  local model = meta_model()

  it("reports unknown module names and members of known objects", function()
    local errors = cats.check_usage(table.concat({
      "local conc = require('conc')",
      "local ch = conc.chan()",
      "ch:sendd(1)",
      "local ctx, cancel = conc.with_cancel(conc.background())",
      "local d = ctx:done()",
      "d:recv(); d:peek()",
      "conc.chann()",
      "conc.signal.notfy(ch)",
      "local t = conc.timer(1)",
      "print(t.C, t.D)",
      "-- conc.not_code(), 'conc.in_a_string'",
    }, "\n"), model, "x")
    assert.are.same({
      "x:7: conc.chann is not in the annotations",
      "x:8: conc.signal.notfy is not in the annotations",
      "x:3: ch:sendd: conc.chan has no member sendd",
      "x:6: d:peek: conc.chan.recv_only has no member peek",
      "x:10: t.D: conc.timer has no member D",
    }, errors)
  end)

  it("leaves names of two meanings alone", function()
    local errors = cats.check_usage(table.concat({
      "local conc = require('conc')",
      "local s = conc.chan()",
      "local function f(s) return s:gsub('a', 'b') end",
      "local h = conc.go(f)",
      "for _, h in ipairs({}) do h:anything() end",
    }, "\n"), model, "x")
    assert.are.same({}, errors)
  end)

  it("passes every example", function()
    local errors = {}
    for _, path in ipairs(support.command_lines("ls examples/*.lua")) do
      local f = assert(io.open(path))
      for _, e in ipairs(cats.check_usage(f:read("a"), model, path)) do
        errors[#errors + 1] = e
      end
      f:close()
    end
    assert.are.same({}, errors)
  end)

  it("passes every Lua block of the docs", function()
    local errors = {}
    local docs = support.command_lines("ls docs/*.md README.md")
    for _, path in ipairs(docs) do
      local f = assert(io.open(path))
      local text = f:read("a")
      f:close()
      for code in text:gmatch("```lua[^\n]*\n(.-)```") do
        for _, e in ipairs(cats.check_usage(code, model, path)) do
          errors[#errors + 1] = e
        end
      end
    end
    assert.are.same({}, errors)
  end)
end)
