-- spec/docs_spec.lua: every public function has a doc comment that LDoc
-- parses (the reference, docs/reference/, is made from them by .ci/docs).
-- "Public" is found, not listed: every module under lua/coronet/ (the files
-- config.ld hands LDoc), every function member of its table (and of the
-- classes the table holds, one level down), and every method of the classes
-- the binding exposes (core.methods). Names starting with "_" are skipped.
-- Needs ldoc on the PATH (Debian package lua-ldoc); runs it from the top
-- of the checkout, where config.ld is.
local core = require "coronet.core"

-- The binding's classes users hold, and the module that documents their methods.
local CLASS_DOCS = {
  socket = "coronet.socket",
  reader = "coronet.reader",
  writer = "coronet.writer",
  process = "coronet.process",
  datagram_socket = "coronet.net_datagram",
}
-- The binding's classes only the Lua modules hold (wrapped there, and documented as the wrapper).
local INTERNAL_CLASSES = { fiber = true, server = true, connect = true }

-- The commands are not coronet's: the sanitizer build's preload is not for them.
local function read_command(command)
  local pipe = assert(io.popen("env -u LD_PRELOAD " .. command))
  local out = pipe:read("a")
  local ok, _, status = pipe:close()
  return out, ok, status
end

-- The module name of a file: lua/coronet/init.lua -> coronet,
-- lua/coronet/connection/sync.lua -> coronet.connection.sync.
local function module_name(file)
  return (file:gsub("^lua/", ""):gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", "."))
end

local function module_files()
  local files = {}
  for file in read_command([[sh -c "find lua/coronet -name '*.lua' | LC_ALL=C sort"]]):gmatch("[^\n]+") do
    files[#files + 1] = file
  end
  assert(#files > 0, "no lua/coronet/*.lua: run from the top of the checkout")
  return files
end

-- LDoc's parsed items: { [module name] = { [item name] = summary .. description } }.
-- pl.pretty.dump writes Lua, except `<cycle>` for back references.
local function ldoc_items()
  local out, ok, status = read_command("ldoc --filter pl.pretty.dump . 2>&1")
  assert(ok, ("ldoc failed (status %s; Debian package lua-ldoc):\n%s"):format(tostring(status), out:sub(1, 2000)))
  local text = out:match("\n?(%{.*)$")
  assert(text, "ldoc --filter printed no table:\n" .. out:sub(1, 2000))
  local chunk = assert(load("return " .. text:gsub("<cycle>", "false"), "ldoc dump", "t", {}))
  local modules = {}
  for _, mod in ipairs(chunk()) do
    local items = {}
    for _, item in ipairs(mod.items or {}) do
      items[item.name] = (item.summary or "") .. (item.description or "")
    end
    modules[mod.name] = items
  end
  return modules
end

-- Whether `items` documents the member at `path` ("spawn", "Deferred.wait"):
-- an item of that name (LDoc writes a method as "Deferred:wait", and keeps a
-- module table's local name, "M.", when it cannot tell it is the module) with
-- a non-empty description.
local function documents(items, path)
  local candidates = { path, "M." .. path, (path:gsub("%.([^.]*)$", ":%1")) }
  for _, name in ipairs(candidates) do
    local text = items[name]
    if text and text:match("%S") then return true end
  end
  return false
end

-- Every function member of a module, and of the classes (tables) it holds,
-- one level down; tables that are modules themselves are left to their own turn.
local function public_functions(mod, is_module)
  local found = {}
  local function walk(t, prefix, depth)
    for key, value in pairs(t) do
      if type(key) == "string" and not key:match("^_") then
        local path = prefix .. key
        if type(value) == "function" then
          found[#found + 1] = { path = path, fn = value }
        elseif type(value) == "table" and depth == 0 and not is_module[value] then
          walk(value, path .. ".", depth + 1)
        end
      end
    end
  end
  walk(mod, "", 0)
  return found
end

describe("the reference (LDoc over lua/coronet/)", function()
  local files = module_files()
  local items = ldoc_items()

  it("has every module file as a module", function()
    local missing = {}
    for _, file in ipairs(files) do
      if not items[module_name(file)] then missing[#missing + 1] = file .. " (no @module " .. module_name(file) .. ")" end
    end
    assert.are.same({}, missing)
  end)

  it("documents every function of every module's table (and of the classes it holds)", function()
    local modules, is_module = {}, {}
    for _, file in ipairs(files) do
      local name = module_name(file)
      local mod = require(name)
      if type(mod) == "table" then
        modules[#modules + 1] = { name = name, table = mod }
        is_module[mod] = true
      end
    end
    -- A function re-exported under several names (coronet.sleep is core.sleep)
    -- needs one documented place.
    local places, order = {}, {}
    for _, mod in ipairs(modules) do
      for _, member in ipairs(public_functions(mod.table, is_module)) do
        if not places[member.fn] then
          places[member.fn] = {}
          order[#order + 1] = member.fn
        end
        local documented = documents(items[mod.name] or {}, member.path)
        table.insert(places[member.fn], { where = mod.name .. "." .. member.path, documented = documented })
      end
    end
    local undocumented = {}
    for _, fn in ipairs(order) do
      local any = false
      for _, place in ipairs(places[fn]) do any = any or place.documented end
      if not any then
        for _, place in ipairs(places[fn]) do undocumented[#undocumented + 1] = place.where end
      end
    end
    table.sort(undocumented)
    assert.are.same({}, undocumented)
  end)

  it("documents every method of the binding's classes in its module", function()
    -- The Lua modules add methods written in Lua to these classes: load them all first.
    for _, file in ipairs(files) do require(module_name(file)) end
    local undocumented, unclassified = {}, {}
    for class, methods in pairs(core.methods) do
      local doc_module = CLASS_DOCS[class]
      if doc_module then
        local doc_items = items[doc_module] or {}
        for name in pairs(methods) do
          if not name:match("^_") then
            local found = false
            for item_name, text in pairs(doc_items) do
              local last = item_name:match("[.:]([^.:]+)$") or item_name
              if last == name and text:match("%S") then found = true end
            end
            if not found then undocumented[#undocumented + 1] = class .. ":" .. name .. " (in " .. doc_module .. ")" end
          end
        end
      elseif not INTERNAL_CLASSES[class] then
        unclassified[#unclassified + 1] = class
      end
    end
    table.sort(undocumented)
    assert.are.same({}, undocumented)
    -- A new class of the binding must be given its doc module here (or called internal).
    assert.are.same({}, unclassified)
  end)
end)
