--- Error values: what every I/O failure returns as `nil, err, code`.
-- `err` is a table with `code` (a stable string), `kind` (Eio's category
-- where one applies: "refused", "no_matching_addresses", "timeout",
-- "connection_reset", "tls"), `message`, `errno` and `address`;
-- `tostring(err)` is the message and `err .. "text"` concatenates. The codes
-- come from one table, in the C core (csrc/core/error.c): "timeout",
-- "closed", "busy", "cancelled", "line_too_long", "stalled",
-- "no_matching_addresses", "tls_handshake", "tls_verify", "tls_truncated",
-- "tls_protocol", "tls_config", and libuv's names such as "ECONNREFUSED",
-- "ECONNRESET", "EAI_NONAME".
-- @module coronet.errors
local core = require "coronet.core"

local M = {}

--- The metatable every error value carries.
M.metatable = core.error_metatable

--- Makes an error value for a failure detected in Lua.
-- @tparam string code a stable code, e.g. "cancelled"
-- @tparam string message what happened
-- @param[opt] address where it happened: an address value or its text
-- @treturn table the error value
function M.new(code, message, address)
  if type(code) ~= "string" then M._typeerror(1, "errors.new", "string", code) end
  if type(message) ~= "string" and type(message) ~= "number" then M._typeerror(2, "errors.new", "string", message) end
  if address ~= nil and type(address) ~= "string" and not core.is_address(address) then
    M._typeerror(3, "errors.new", "address value or string", address)
  end
  return core.error(code, message, address)
end

--- True when `err` is a coronet error value (optionally with the given code).
-- @param err any value
-- @tparam[opt] string code
-- @treturn boolean
function M.is(err, code)
  if code ~= nil and type(code) ~= "string" then M._typeerror(2, "errors.is", "string", code) end
  return getmetatable(err) == M.metatable and (code == nil or err.code == code)
end

local function add_traceback(err, traceback)
  if err.traceback == nil then err.traceback = traceback end
end

--- The message handler of coronet's fibers: a string error gets the
-- traceback appended; a table gets a `traceback` field when it takes one;
-- anything else (nil included), and a table whose metamethods raise, is
-- passed on untouched. It never raises.
-- @param err the error value
-- @return the error value
function M.with_traceback(err)
  if type(err) == "string" then return debug.traceback(err, 2) end
  if type(err) == "table" then pcall(add_traceback, err, debug.traceback("", 2)) end
  return err
end

-- Misuse errors raised by coronet's Lua modules, in lauxlib's words (the
-- names start with "_": they are for coronet's own modules, not part of the
-- documented interface).

-- The name of v's type for a message: its metatable's __name (as
-- luaL_typeerror says it), or type(v).
function M._typename(v)
  local mt = getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  if type(name) == "string" then return name end
  return type(v)
end

-- Calls that name the function without self: obj:method(...), where Lua
-- knows it (namewhat "method"), or, for a method (`method` true), a call
-- whose form Lua cannot tell (a tail call, pcall(f, ...)), most often
-- `return obj:method(...)`. A call as a field (`mod.method(obj, ...)`) or
-- through a variable counts self.
local function counts_without_self(namewhat, method)
  return namewhat == "method" or (method and namewhat == "")
end

-- Raises luaL_argerror's "bad argument #n to 'fn' (msg)". `level` counts
-- from argerror's caller (1, the default) up to the function whose argument
-- n is bad; the error is blamed on that function's caller. A method
-- (`method` true) counts n with self; called with ':', as lauxlib does, its
-- arguments are counted without self, and a bad self says "calling 'fn' on
-- bad self".
function M._argerror(n, fn, msg, level, method)
  level = (level or 1) + 1
  local info = debug.getinfo(level, "n")
  if counts_without_self(info and info.namewhat or "", method) then
    n = n - 1
    if n == 0 then error(("calling '%s' on bad self (%s)"):format(fn, msg), level + 1) end
  end
  error(("bad argument #%d to '%s' (%s)"):format(n, fn, msg), level + 1)
end

-- Raises the type error "bad argument #n to 'fn' (what expected, got <type>)".
function M._typeerror(n, fn, what, value, level, method)
  M._argerror(n, fn, ("%s expected, got %s"):format(what, M._typename(value)), (level or 1) + 1, method)
end

-- Raises "fn: option 'name' must be <what> (got <value>)", the message of
-- the binding's option checks, blamed on fn's caller (`level` as for _argerror).
function M._optionerror(fn, name, what, value, level)
  local got = type(value) == "string" and ("'%s'"):format(value) or M._typename(value)
  if type(value) == "number" or type(value) == "boolean" then got = tostring(value) end
  error(("%s: option '%s' must be %s (got %s)"):format(fn, name, what, got), (level or 1) + 2)
end

-- Returns a function check(self, fn) raising "calling 'fn' on bad self"
-- (or bad argument #1, for a call with '.') unless self's metatable is mt.
function M._self_checker(mt, class)
  return function(self, fn)
    if getmetatable(self) ~= mt then M._typeerror(1, fn, class, self, 2, true) end
  end
end

return M
