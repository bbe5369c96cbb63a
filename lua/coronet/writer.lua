--- The writer of a connection. Every method is also a function of this
-- module taking the writer first (`writer.write(w, "x")` is `w:write("x")`).
-- Most are written in C (csrc/binding/lwriter.c); `flushed` is here.
--
-- Writes are buffered and coalesced: small writes made in one loop turn
-- leave in one system call, just before the loop next blocks. One fiber
-- waits on a writer at a time; a second gets `nil, err, "busy"`.
-- @module coronet.writer

--- Buffers strings and arrays of strings, in any mix, and returns at once
-- while the pending bytes are at or below the high-water mark
-- (`writer_buffer_size`, 64 KiB by default). Above it, the call first waits
-- (for at most the socket's send timeout) until they are, then takes its
-- bytes: so pending bytes never exceed the mark plus one call's bytes.
--
-- A write that fails takes none of its bytes: `"busy"` (another fiber waits
-- on this writer; while another fiber's write waits for room, even a write
-- that would fit below the mark, so accepted writes keep their call order), `"timeout"`, `"cancelled"` (the fiber was cancelled or
-- interrupted during the wait) and `"closed"` all mean nothing was accepted,
-- so the same call may be retried without duplicating data. A write that
-- returns true has accepted every byte; they are sent unless the connection
-- fails. Numbers are written as `tostring` gives them, formatted straight
-- into the pending buffer (no Lua string is made of them),
-- so `w:write("$", #s, "\r\n", s, "\r\n")` gathers without a concat and
-- allocates nothing but the pending buffer's growth. Bad arguments (anything but strings, numbers and non-empty arrays
-- of them; a table with a metatable is refused, convert it with `tostring`)
-- raise before any byte of the call is taken.
-- @function write
-- @treturn true, or `nil, err, code` ("closed", "busy", "timeout", "cancelled", "stalled", "EPIPE"...)

--- Waits until the kernel has every byte written so far. On a closed writer
-- it waits for the final flush that the close started; once bytes were
-- dropped (an abort, the close timeout, a write error) it fails with that
-- status ("closed", "timeout", "stalled", "EPIPE"...), never true.
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
-- never waits. A fiber waiting in `write` or `flush` gets `nil, err, "closed"`
-- (its write took nothing). Writing after close raises; flushing waits for
-- the final flush.
-- @function close

--- True once closed.
-- @function is_closed
-- @treturn boolean

--- The socket this writer belongs to.
-- @function socket
local core = require "coronet.core"
local deferred = require "coronet.deferred"
local errors = require "coronet.errors"

local methods = core.methods.writer
local WRITER = debug.getregistry()["coronet.writer"] -- the class's metatable, as luaL_getmetatable gives it

--- A deferred determined with what `writer:flush()` returns: true once the
-- kernel has taken every byte written so far, or `nil, err, code` if the
-- connection fails first or bytes were dropped. Closing the writer meanwhile
-- does not fail it: the close's final flush still determines it.
-- @function writer:flushed
-- @treturn Deferred
function methods.flushed(writer)
  if getmetatable(writer) ~= WRITER then errors._typeerror(1, "flushed", "coronet.writer", writer, 1, true) end
  local ivar = deferred.ivar()
  core.spawn(function() ivar:fill(writer:flush()) end)
  return ivar.deferred
end

return methods
