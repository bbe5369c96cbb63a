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
-- @param[opt] address where it happened
-- @treturn table the error value
function M.new(code, message, address)
  return core.error(code, message, address)
end

--- True when `err` is a coronet error value (optionally with the given code).
-- @param err any value
-- @tparam[opt] string code
-- @treturn boolean
function M.is(err, code)
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

return M
