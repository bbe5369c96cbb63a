--- The writer of a connection. Every method is also a function of this
-- module taking the writer first (`writer.write(w, "x")` is `w:write("x")`).
-- Most are written in C (csrc/binding/lwriter.c); `flushed` is here.
--
-- Writes are buffered and coalesced: small writes made in one loop turn
-- leave in one system call, just before the loop next blocks. One fiber
-- waits on a writer at a time; a second gets `nil, err, "busy"`.
-- @module coronet.writer

--- Buffers strings and arrays of strings, in any mix, and returns at once;
-- waits only when pending bytes pass the high-water mark
-- (`writer_buffer_size`, 64 KiB by default), for at most the socket's send
-- timeout.
-- @function write
-- @treturn true, or `nil, err, code` ("closed", "stalled", "EPIPE"...)

--- Waits until the kernel has every byte written so far.
-- @function flush
-- @tparam[opt] number timeout
-- @treturn true, or `nil, err, code`

--- Bytes written but not yet taken by the kernel.
-- @function pending
-- @treturn integer

--- The high-water mark.
-- @function hwm
-- @treturn integer

--- Flushes (bounded by `close_timeout`), then shuts down the sending side;
-- never waits. A fiber blocked in `write` gets `nil, err, "closed"`.
-- @function close

--- True once closed.
-- @function is_closed
-- @treturn boolean

--- The socket this writer belongs to.
-- @function socket
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
