-- luacats.lua: a checker of LuaCATS annotations (the `---@` comments the
-- Lua language server reads), for machines where lua-language-server is
-- not installable (Debian 12 has no package of it, and neither has the
-- npm registry). It parses every annotation line with a grammar of
-- LuaLS's type expressions, fails on malformed ones and on references
-- to undefined types, and builds a model of the declared classes that
-- the specs compare with the loaded module.
--
-- As a module: local cats = dofile("scripts/luacats.lua")
--   cats.parse_files{paths} -> model, errors
--   cats.check_usage(source, model, chunkname) -> errors
-- As a command: lua5.4 scripts/luacats.lua FILE... (exit 1 on errors).
local M = {}

-- Types LuaLS knows without a declaration.
local BUILTIN = {}
for name in ([[nil any unknown boolean string number integer function table
  thread userdata lightuserdata true false self]]):gmatch("%S+") do
  BUILTIN[name] = true
end

-- The tags this checker understands; any other `---@tag` is an error,
-- so a typo (`---@parm`) does not pass silently.
local OPERATORS = {}
for op in ([[add sub mul div mod pow unm concat len eq lt le call idiv band
  bor bxor shl shr bnot]]):gmatch("%S+") do
  OPERATORS[op] = true
end

---------------------------------------------------------------- lexer

-- Splits a type expression into tokens {k = kind, v = text, p = pos}.
-- Kinds: name, str, num, tick (`T`), and the punctuation itself. The
-- text after a type is a comment, so an unfinished quote ends the list
-- with a "bad" token, an error only if the parser reaches it.
local function lex(s)
  local toks, i = {}, 1
  while i <= #s do
    local c = s:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif s:sub(i, i + 2) == "..." then
      toks[#toks + 1] = {k = "...", v = "...", p = i}
      i = i + 3
    elseif s:sub(i, i + 1) == "[]" then
      toks[#toks + 1] = {k = "[]", v = "[]", p = i}
      i = i + 2
    elseif c:match("[%a_]") then
      local name = s:match("^[%a_][%w_]*", i)
      -- dotted names (conc.chan.recv_only); a trailing dot is not part
      local j = i + #name
      while s:match("^%.[%a_]", j) do
        local part = s:match("^%.[%a_][%w_]*", j)
        name, j = name .. part, j + #part
      end
      toks[#toks + 1] = {k = "name", v = name, p = i}
      i = j
    elseif c:match("%d") or (c == "-" and s:match("^%-%d", i)) then
      local num = s:match("^%-?%d+", i)
      toks[#toks + 1] = {k = "num", v = num, p = i}
      i = i + #num
    elseif c == '"' or c == "'" then
      local j = s:find(c, i + 1, true)
      if not j then  -- may be a comment's apostrophe, after the type
        toks[#toks + 1] = {k = "bad", v = "unfinished string", p = i}
        break
      end
      toks[#toks + 1] = {k = "str", v = s:sub(i, j), p = i}
      i = j + 1
    elseif c == "`" then
      local j = s:find("`", i + 1, true)
      if not j then
        toks[#toks + 1] = {k = "bad", v = "unfinished backtick", p = i}
        break
      end
      toks[#toks + 1] = {k = "tick", v = s:sub(i + 1, j - 1), p = i}
      i = j + 1
    else
      toks[#toks + 1] = {k = c, v = c, p = i}
      i = i + 1
    end
  end
  toks[#toks + 1] = {k = "eof", v = "", p = #s + 1}
  return toks
end

---------------------------------------------------------------- parser

-- A recursive-descent parser over one token list. Every parse_* takes
-- the parser and returns a node; errors raise {msg = ...} (caught by
-- M.parse_type), so a malformed type never half-parses.
local P = {}
P.__index = P

local function fail(msg) error({msg = msg}, 0) end

function P:peek(k) return self.t[self.i].k == k end
function P:take(k)
  local tok = self.t[self.i]
  if k and tok.k ~= k then
    fail(("expected '%s' but found '%s' at column %d"):format(
      k, tok.v ~= "" and tok.v or "end", tok.p))
  end
  self.i = self.i + 1
  return tok
end

function P:union()
  local node = {k = "union", self:postfix()}
  while self:peek("|") do
    self:take("|")
    node[#node + 1] = self:postfix()
  end
  return #node == 1 and node[1] or node
end

function P:postfix()
  local node = self:primary()
  while self:peek("[]") or self:peek("?") do
    node = {k = self:take().k == "[]" and "array" or "optional", node}
  end
  return node
end

-- fun(a: T, b?: U, ...: V): R1, R2
function P:fun()
  local node = {k = "fun", params = {}, returns = {}}
  self:take("(")
  while not self:peek(")") do
    local name = self:peek("...") and self:take().v or self:take("name").v
    if self:peek("?") then self:take("?") end
    local ty = {k = "name", v = "any"}
    if self:peek(":") then self:take(":"); ty = self:union() end
    node.params[#node.params + 1] = {name = name, type = ty}
    if not self:peek(")") then self:take(",") end
  end
  self:take(")")
  if self:peek(":") then
    self:take(":")
    repeat
      if #node.returns > 0 then self:take(",") end
      if self:peek("...") then
        self:take("...")
        if self:peek(":") then self:take(":"); self:union() end
        node.returns[#node.returns + 1] = {k = "name", v = "any"}
      else
        -- a named return (ok: boolean) or a bare type
        if self:peek("name") and self.t[self.i + 1].k == ":" then
          self:take("name"); self:take(":")
        end
        node.returns[#node.returns + 1] = self:union()
      end
    until not self:peek(",")
  end
  return node
end

-- {name: T, [K]: V, [1]: W}
function P:table_literal()
  local node = {k = "record", fields = {}}
  self:take("{")
  while not self:peek("}") do
    local key
    if self:peek("[") then
      self:take("[")
      key = self:union()
      self:take("]")
    else
      key = self:take("name").v
    end
    if self:peek("?") then self:take("?") end
    self:take(":")
    node.fields[#node.fields + 1] = {key = key, type = self:union()}
    if not self:peek("}") then self:take(",") end
  end
  self:take("}")
  return node
end

function P:primary()
  local tok = self.t[self.i]
  if tok.k == "(" then
    self:take("(")
    local node = self:union()
    self:take(")")
    return node
  elseif tok.k == "{" then
    return self:table_literal()
  elseif tok.k == "str" or tok.k == "num" then
    self:take()
    return {k = "literal", v = tok.v}
  elseif tok.k == "tick" then
    self:take()
    return {k = "capture", v = tok.v}
  elseif tok.k == "name" and tok.v == "fun" and self.t[self.i + 1].k == "(" then
    self:take()
    return self:fun()
  elseif tok.k == "name" then
    self:take()
    local node = {k = "name", v = tok.v}
    if self:peek("<") then
      self:take("<")
      node.args = {self:union()}
      while self:peek(",") do
        self:take(",")
        node.args[#node.args + 1] = self:union()
      end
      self:take(">")
    end
    return node
  end
  fail(("a type expected but found '%s' at column %d"):format(
    tok.v ~= "" and tok.v or "end", tok.p))
end

-- Parses the type at the start of s. Returns the node and the rest of
-- s (a name or a comment), or nil and an error message.
function M.parse_type(s)
  local toks = lex(s)
  local p = setmetatable({t = toks, i = 1}, P)
  local ok, node = pcall(p.union, p)
  if not ok then
    if type(node) == "table" then return nil, node.msg end
    error(node, 0)
  end
  return node, s:sub(toks[p.i].p)
end

-- Calls fn(name) for each type name a node refers to.
local function each_name(node, fn)
  if node.k == "name" then
    fn(node.v)
    for _, a in ipairs(node.args or {}) do each_name(a, fn) end
  elseif node.k == "fun" then
    for _, prm in ipairs(node.params) do each_name(prm.type, fn) end
    for _, r in ipairs(node.returns) do each_name(r, fn) end
  elseif node.k == "record" then
    for _, f in ipairs(node.fields) do
      if type(f.key) == "table" then each_name(f.key, fn) end
      each_name(f.type, fn)
    end
  else
    for _, sub in ipairs(node) do each_name(sub, fn) end
  end
end
M.each_name = each_name

-- The class names a type may be: `conc.chan?` and `conc.chan|nil` are
-- conc.chan; a union of several classes gives each.
local function class_names(node, out)
  out = out or {}
  if node.k == "name" then
    if not BUILTIN[node.v] then out[#out + 1] = node.v end
  elseif node.k == "optional" or node.k == "union" then
    for _, sub in ipairs(node) do class_names(sub, out) end
  end
  return out
end
M.class_names = class_names

------------------------------------------------------ annotation lines

-- The parser of one file's lines into the shared model. State: the
-- pending block of annotations (reset by code or a blank line), the
-- class an alias continuation belongs to, the locals bound to classes.
local Reader = {}
Reader.__index = Reader

function Reader:err(msg)
  self.errors[#self.errors + 1] = ("%s:%d: %s"):format(self.file,
    self.line, msg)
end

-- Parses a type and records its names for resolution at the end.
function Reader:type_of(s, what)
  local node, rest = M.parse_type(s)
  if not node then
    self:err(("malformed type in %s: %s"):format(what, rest))
    return nil, ""
  end
  local generics = self.block.generics
  each_name(node, function(name)
    if not generics[name] then
      self.refs[#self.refs + 1] = {name = name, file = self.file,
        line = self.line}
    end
  end)
  return node, rest
end

function Reader:new_block()
  self.block = {params = {}, returns = {}, overloads = {}, generics = {},
    operators = {}, fields = {}}
end

function Reader:class(name)
  local c = self.model.classes[name]
  if not c then
    c = {name = name, fields = {}, methods = {}, functions = {},
      operators = {}, parents = {}, file = self.file, line = self.line}
    self.model.classes[name] = c
  end
  return c
end

local tags = {}

function tags.meta(r, rest)
  if rest:match("%S") and not rest:match("^%s*[%a_][%w_.]*%s*$") then
    r:err("@meta takes at most a module name")
  end
end

function tags.class(r, rest)
  local body = rest:gsub("^%s*%((%a+)%)", function(attr)
    if attr ~= "exact" and attr ~= "partial" then
      r:err("unknown class attribute (" .. attr .. ")")
    end
    return ""
  end)
  local name, after = body:match("^%s*([%a_][%w_.]*)(.*)$")
  if not name then return r:err("@class needs a name") end
  if BUILTIN[name] then return r:err("@class redefines builtin " .. name) end
  local generics = after:match("^<([^>]*)>")
  if generics then
    after = after:sub(#generics + 3)
    for g in generics:gmatch("[^,%s]+") do r.block.generics[g] = true end
  end
  local c = r:class(name)
  r.block.class = c
  local parents = after:match("^%s*:%s*(.*)$")
  while parents and parents:match("%S") do
    local node, more = r:type_of(parents, "@class " .. name .. " parent")
    if not node then break end
    c.parents[#c.parents + 1] = node
    parents = more:match("^%s*,%s*(.*)$")
  end
end

function tags.field(r, rest)
  local c = r.block.class
  if not c then return r:err("@field outside a @class block") end
  rest = rest:gsub("^%s*(%a+)%s", function(scope)
    if scope == "private" or scope == "protected" or scope == "public" or
        scope == "package" then return " " end
  end)
  local key, after
  if rest:match("^%s*%[") then
    local inner = rest:match("^%s*%[(.-)%]")
    if not inner then return r:err("@field: unclosed [key]") end
    r:type_of(inner, "@field key")
    key, after = "[" .. inner .. "]", rest:match("^%s*%b[](.*)$")
  else
    key, after = rest:match("^%s*([%a_][%w_]*)%??(.*)$")
  end
  if not key or not after:match("^%s+%S") then
    return r:err("@field needs a name and a type")
  end
  local node = r:type_of(after, "@field " .. key)
  if node then c.fields[key] = node end
end

function tags.param(r, rest)
  local name, after = rest:match("^%s*([%a_][%w_]*)%??(.*)$")
  if not name then name, after = rest:match("^%s*(%.%.%.)(.*)$") end
  if not name or not after:match("^%s+%S") then
    return r:err("@param needs a name and a type")
  end
  if r.block.params[name] then r:err("@param " .. name .. " given twice") end
  local node = r:type_of(after, "@param " .. name)
  r.block.params[name] = node or true
  r.block.params[#r.block.params + 1] = name
end

tags["return"] = function(r, rest)
  local node, after = r:type_of(rest, "@return")
  if not node then return end
  local name = after:match("^%s*([%a_][%w_]*)") or after:match("^%s*(%.%.%.)")
  r.block.returns[#r.block.returns + 1] = {type = node, name = name}
end

function tags.overload(r, rest)
  local node, after = r:type_of(rest, "@overload")
  if node and node.k ~= "fun" then r:err("@overload must be a fun(...)") end
  if node and after:match("%S") and not after:match("^%s*#") then
    r:err("@overload: unexpected text after the type: " .. after)
  end
  r.block.overloads[#r.block.overloads + 1] = node
end

function tags.generic(r, rest)
  for part in rest:gmatch("[^,]+") do
    local name, parent = part:match("^%s*([%a_][%w_]*)%s*:?%s*(.-)%s*$")
    if not name then return r:err("@generic needs names") end
    r.block.generics[name] = true
    if parent ~= "" then r:type_of(parent, "@generic " .. name) end
  end
end

function tags.alias(r, rest)
  local name, after = rest:match("^%s*([%a_][%w_.]*)(.*)$")
  if not name then return r:err("@alias needs a name") end
  if r.model.aliases[name] or r.model.classes[name] then
    r:err("@alias " .. name .. " declared twice")
  end
  r.model.aliases[name] = {file = r.file, line = r.line}
  if after:match("%S") then
    r:type_of(after, "@alias " .. name)
  else
    r.alias = name  -- the members follow as `---| type` lines
  end
end

function tags.operator(r, rest)
  local c = r.block.class
  if not c then return r:err("@operator outside a @class block") end
  local op, args, after = rest:match("^%s*(%a+)(%b())%s*:(.*)$")
  if not op then op, after = rest:match("^%s*(%a+)%s*:(.*)$") end
  if not op or not OPERATORS[op] then
    return r:err("@operator: expected `op[(type)]: type`")
  end
  if args and args ~= "()" then r:type_of(args:sub(2, -2), "@operator") end
  r:type_of(after, "@operator " .. op)
  c.operators[op] = true
end

function tags.type(r, rest) r:type_of(rest, "@type") end
function tags.see() end
function tags.deprecated() end
function tags.nodiscard() end
function tags.async() end

-- One line of a file.
function Reader:read(text)
  local tag, rest = text:match("^%s*%-%-%-%s*@(%a+)(.*)$")
  if tag then
    local fn = tags[tag]
    if not fn then return self:err("unknown annotation @" .. tag) end
    if tag ~= "alias" then self.alias = nil end
    return fn(self, rest)
  end
  local member = text:match("^%s*%-%-%-%s*|(.*)$")
  if member then
    if not self.alias then return self:err("`---|` outside an @alias") end
    local body = member:gsub("^%s*[+>]", "")
    local node, after = self:type_of(body, "@alias " .. self.alias)
    if node and after:match("%S") and not after:match("^%s*#") then
      self:err("`---|` member: comments start with #: " .. after)
    end
    return
  end
  if text:match("^%s*%-%-") then return end  -- a comment or description
  self.alias = nil
  if not text:match("%S") then return self:new_block() end
  self:code(text)
  self:new_block()
end

-- A line of code: a local bound to the block's class, or a function of
-- a bound local. Anything else has no place in a definition file.
function Reader:code(text)
  local ident = text:match("^%s*local%s+([%a_][%w_]*)%s*=%s*{%s*}%s*$")
  if ident then
    if not self.block.class then
      return self:err("local " .. ident .. " has no @class")
    end
    self.locals[ident] = self.block.class
    return
  end
  local owner, sep, name, params = text:match(
    "^%s*function%s+([%a_][%w_]*)([.:])([%a_][%w_]*)%s*(%b())%s*end%s*$")
  if owner then return self:func(owner, sep, name, params) end
  if text:match("^%s*return%s+[%a_][%w_]*%s*$") then return end
  self:err("not a declaration: " .. text)
end

function Reader:func(owner, sep, name, params)
  local c = self.locals[owner]
  if not c then return self:err(owner .. " is not bound to a @class") end
  local list, seen = {}, {}
  for p in params:sub(2, -2):gmatch("[^,%s]+") do
    list[#list + 1] = p
    seen[p] = true
    if not self.block.params[p] then
      self:err(("%s%s%s: parameter %s has no @param"):format(owner, sep,
        name, p))
    end
  end
  for _, p in ipairs(self.block.params) do
    if not seen[p] then
      self:err(("%s%s%s: @param %s is not a parameter"):format(owner, sep,
        name, p))
    end
  end
  local entry = {params = list, returns = self.block.returns,
    overloads = self.block.overloads, file = self.file, line = self.line}
  local into = sep == ":" and c.methods or c.functions
  if into[name] then self:err(c.name .. sep .. name .. " declared twice") end
  into[name] = entry
end

-- Parses the files; returns the model and a list of error strings.
function M.parse_files(paths)
  local model = {classes = {}, aliases = {}}
  local errors, refs = {}, {}
  for _, path in ipairs(paths) do
    local f, ferr = io.open(path)
    if not f then
      errors[#errors + 1] = ferr
    else
      local r = setmetatable({model = model, errors = errors, refs = refs,
        file = path, line = 0, locals = {}}, Reader)
      r:new_block()
      local first = true
      for text in f:lines() do
        r.line = r.line + 1
        if first and not text:match("^%-%-%-@meta") then
          r:err("a definition file starts with ---@meta")
        end
        first = false
        r:read(text)
      end
      f:close()
    end
  end
  for _, ref in ipairs(refs) do
    if not (BUILTIN[ref.name] or model.classes[ref.name] or
        model.aliases[ref.name]) then
      errors[#errors + 1] = ("%s:%d: undefined type %s"):format(ref.file,
        ref.line, ref.name)
    end
  end
  return model, errors
end

---------------------------------------------------- usage of the API

-- Blanks out comments and string literals (keeping line breaks), so
-- that names are matched in code only.
local function strip(src)
  local out, i = {}, 1
  local function blank(s) return (s:gsub("[^\n]", " ")) end
  while i <= #src do
    local c = src:sub(i, i)
    local long = src:match("^%-%-%[(=*)%[", i) or src:match("^%[(=*)%[", i)
    if long then
      local open = src:match("^%-?%-?%[=*%[", i)
      local close = "]" .. long .. "]"
      local j = select(2, src:find(close, i + #open, true)) or #src
      out[#out + 1] = blank(src:sub(i, j))
      i = j + 1
    elseif src:sub(i, i + 1) == "--" then
      local j = src:find("\n", i, true) or #src + 1
      out[#out + 1] = blank(src:sub(i, j - 1))
      i = j
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= #src and src:sub(j, j) ~= c do
        j = j + (src:sub(j, j) == "\\" and 2 or 1)
      end
      out[#out + 1] = c .. blank(src:sub(i + 1, j - 1)) .. c
      i = j + 1
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return table.concat(out)
end
M.strip = strip

-- The members of a class, its parents' included.
local function member(model, cname, name, seen)
  seen = seen or {}
  local c = model.classes[cname]
  if not c or seen[cname] then return nil end
  seen[cname] = true
  local m = c.methods[name] or c.functions[name] or c.fields[name]
  if m then return m end
  for _, parent in ipairs(c.parents) do
    if parent.k == "name" then
      local found = member(model, parent.v, name, seen)
      if found then return found end
    end
  end
end
M.member = member

-- The class of each result of a call `conc.f(` or `x:m(` starting at
-- rhs, or nil when the call is not one the model knows.
local function call_classes(rhs, model, types)
  local entry
  local f = rhs:match("^conc%.([%a_][%w_]*)%s*[%({]")
  if f then
    entry = member(model, "conc", f)
  else
    local recv, m = rhs:match("^([%a_][%w_]*):([%a_][%w_]*)%s*[%({]")
    if recv and types[recv] then entry = member(model, types[recv], m) end
  end
  if not entry or not entry.returns then return nil end
  local out = {}
  for i, r in ipairs(entry.returns) do
    local names = class_names(r.type)
    out[i] = #names == 1 and names[1] or false
  end
  return out
end

-- Which locals hold a known object: a name every assignment of which
-- (`local a, b = call`, `a = call`) is a call returning one class in
-- its position. A name also assigned anything else, or used as a
-- function parameter or loop variable, is unknown (scopes are not
-- tracked, so one name may mean two things in two functions).
local function infer(code, model)
  local types, unknown = {}, {}
  local assigns = {}
  local function names_of(list)
    local t = {}
    for n in list:gmatch("[%a_][%w_]*") do
      if n ~= "local" and n ~= "close" and n ~= "const" then t[#t + 1] = n end
    end
    return t
  end
  for list, rhs in code:gmatch("local%s+([%w_%s,<>]-)%s*=%s*([^\n]*)") do
    assigns[#assigns + 1] = {names_of(list), rhs}
  end
  for list, rhs in code:gmatch("\n%s*([%a_][%w_%s,]-)%s*=%s*([^=\n][^\n]*)") do
    if not list:match("^local%s") then assigns[#assigns + 1] = {names_of(list), rhs} end
  end
  for params in code:gmatch("function%s*[%w_.:]*%s*(%b())") do
    for _, n in ipairs(names_of(params)) do unknown[n] = true end
  end
  for list in code:gmatch("%f[%w_]for%s+([%w_%s,]-)%s+in%f[^%w_]") do
    for _, n in ipairs(names_of(list)) do unknown[n] = true end
  end
  for list in code:gmatch("%f[%w_]for%s+([%a_][%w_]*)%s*=") do unknown[list] = true end
  for n in code:gmatch("local%s+function%s+([%a_][%w_]*)") do unknown[n] = true end
  -- two passes: a method's result needs its receiver's class first
  for _ = 1, 2 do
    local known = types
    types = {}
    for _, a in ipairs(assigns) do
      local classes = call_classes(a[2], model, known)
      for i, n in ipairs(a[1]) do
        local cls = classes and classes[i] or false
        if types[n] == nil or types[n] == cls then types[n] = cls
        else types[n] = false end
      end
    end
  end
  for n in pairs(unknown) do types[n] = false end
  return types
end

-- A light type check of code that uses the module through a local named
-- `conc`: every `conc.name` (and `conc.signal.name`) must be declared,
-- and every `x:method(...)` or `x.field` on a local whose type is known
-- (assigned from a conc function or method returning an object) must be
-- a member of that type. A name given two different types in one file
-- is not checked (scopes are not tracked).
function M.check_usage(src, model, chunk)
  local errors, code = {}, strip(src)
  local lib = model.classes.conc
  local line_of = function(pos)
    return select(2, code:sub(1, pos):gsub("\n", "")) + 1
  end
  local function err(pos, msg)
    errors[#errors + 1] = ("%s:%d: %s"):format(chunk, line_of(pos), msg)
  end
  -- module functions (and conc.signal's)
  for pos, name, after in code:gmatch("()%f[%w_.]conc%.([%a_][%w_]*)()") do
    if not member(model, "conc", name) then
      err(pos, "conc." .. name .. " is not in the annotations")
    elseif name == "signal" then
      local fn = code:match("^%.([%a_][%w_]*)", after)
      if fn and not member(model, "conc.signal", fn) then
        err(pos, "conc.signal." .. fn .. " is not in the annotations")
      end
    end
  end
  local types = infer(code, model)
  for pos, recv, sep, name in code:gmatch("()%f[%w_.]([%a_][%w_]*)([:.])([%a_][%w_]*)") do
    local cls = types[recv]
    if cls and not member(model, cls, name) then
      err(pos, ("%s%s%s: %s has no member %s"):format(recv, sep, name, cls,
        name))
    end
  end
  return errors
end

if arg and arg[0] and arg[0]:match("luacats%.lua$") then
  local _, errors = M.parse_files({table.unpack(arg)})
  for _, e in ipairs(errors) do io.stderr:write(e, "\n") end
  os.exit(#errors == 0 and 0 or 1)
end

return M
