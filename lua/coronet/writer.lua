--- The writer's operations as functions taking the writer first
-- (`writer.write(w, "x")` is `w:write("x")`): write, flush, flushed,
-- pending, hwm, close, is_closed, socket.
-- @module coronet.writer
local core = require "coronet.core"
local deferred = require "coronet.deferred"

local methods = core.methods.writer

--- A deferred determined (with true) once the kernel has taken every byte
-- written so far, or (with nil, err, code) if the connection fails first.
-- @function writer:flushed
-- @treturn Deferred
function methods.flushed(writer)
  local ivar = deferred.ivar()
  local pending = writer:pending()
  if pending == 0 then
    ivar:fill(true)
  else
    core.spawn(function() ivar:fill(writer:flush()) end)
  end
  return ivar.deferred
end

return methods
