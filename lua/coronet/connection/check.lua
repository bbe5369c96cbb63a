--- Argument checks for coronet.connection's public functions. A bad
-- argument raises as lauxlib's `luaL_argerror` does: "bad argument #2 to
-- 'coronet.connection.receive_poll' (the length: an integer >= 0 expected,
-- got -1)", counted from the object when the function was called as a
-- method (`conn:receive_poll(0, -1)` says #2, `connection.receive_poll(conn,
-- 0, -1)` says #3), and "calling '...' on bad self (...)" for a method
-- called on the wrong object. The error points at the public function's
-- caller. Internal to coronet.connection.
--
-- `depth` (default 0) counts the local functions between the public
-- function and the check: 0 when the public function calls the check
-- itself. A public function must not tail-call a function that checks.
-- @module coronet.connection.check
local errors = require "coronet.errors"

local M = {}

--- What a bad value was, for a message: a number's value, a closed file, an
-- object's `__name`, else its type.
-- @param value
-- @treturn string
function M.shown(value)
  if type(value) == "number" then return tostring(value) end
  if io.type(value) == "closed file" then return "closed file" end
  local meta = getmetatable(value)
  if type(meta) == "table" and type(rawget(meta, "__name")) == "string" then return rawget(meta, "__name") end
  return type(value)
end
local shown = M.shown

-- Raises for argument n of the public function `depth` levels above the
-- check that called this, through coronet.errors' one argerror.
local function raise(fn, n, detail, depth)
  errors._argerror(n, "coronet.connection." .. fn, detail, 3 + (depth or 0))
end

--- Raises "bad argument #n to 'coronet.connection.fn' (detail)".
-- @tparam string fn the public name after "coronet.connection."
-- @tparam integer n the argument's number in a plain call
-- @tparam string detail what is wrong
-- @tparam[opt] integer depth
function M.argument(fn, n, detail, depth)
  raise(fn, n, detail, depth or 0)
end

--- Raises "... (what expected, got <type>)", the type as lauxlib names it
-- (a closed file and an object's `__name` as `shown` gives them).
-- @tparam string fn
-- @tparam integer n
-- @tparam string what
-- @param value the bad value
-- @tparam[opt] integer depth
function M.expected(fn, n, what, value, depth)
  local got = type(value) == "number" and "number" or shown(value)
  raise(fn, n, ("%s expected, got %s"):format(what, got), depth or 0)
end

--- Raises "... (option 'name': what expected, got <value>)".
-- @tparam string fn
-- @tparam integer n the options table's number
-- @tparam string name the option
-- @tparam string what
-- @param value the bad value
-- @tparam[opt] integer depth
function M.option(fn, n, name, what, value, depth)
  raise(fn, n, ("option '%s': %s expected, got %s"):format(name, what, shown(value)), depth or 0)
end

--- A count (a length or an offset): an integer >= 0, or a float with such
-- a value (as `luaL_checkinteger` takes it); returns it as an integer.
-- @tparam string fn
-- @tparam integer n
-- @param value
-- @tparam string what "the length", "the offset"
-- @tparam[opt] integer depth
-- @treturn integer
function M.count(fn, n, value, what, depth)
  local count = type(value) == "number" and math.tointeger(value)
  if not count or count < 0 then
    raise(fn, n, ("%s: an integer >= 0 expected, got %s"):format(what, shown(value)), depth or 0)
  end
  return count
end

--- An options table or nil; returns a table (empty for nil).
-- @tparam string fn
-- @tparam integer n
-- @param opts
-- @tparam[opt] integer depth
-- @treturn table
function M.options(fn, n, opts, depth)
  if opts == nil then return {} end
  if type(opts) ~= "table" then raise(fn, n, ("options table expected, got %s"):format(shown(opts)), depth or 0) end
  return opts
end

--- A timeout option in seconds >= 0, false or nil for none; returns the
-- seconds or nil.
-- @tparam string fn
-- @tparam integer n
-- @tparam table opts
-- @tparam[opt] integer depth
-- @treturn ?number
function M.timeout(fn, n, opts, depth)
  local timeout = opts.timeout
  if timeout == nil or timeout == false then return nil end
  if not (type(timeout) == "number" and timeout >= 0) then
    raise(fn, n, ("option 'timeout': seconds >= 0 (or false for none) expected, got %s"):format(shown(timeout)),
      depth or 0)
  end
  return timeout
end

return M
