--- The reader of a connection. Every method is also a function of this
-- module taking the reader first (`reader.read_line(r)` is `r:read_line()`).
-- The methods are written in C (csrc/binding/lreader.c); this module
-- documents them and returns their table.
--
-- One fiber reads at a time: while one waits, every other read (even one
-- the buffered bytes could serve) gets `nil, err, "busy"` at once and
-- consumes nothing. Every read takes a last argument: a timeout in
-- seconds, `false` for none, or `{timeout = s}`; without it the socket's read
-- timeout applies (see `socket:settimeouts`). A timeout is a deadline for the
-- whole call, never consumes buffered bytes and is not sticky.
--
-- The cap rule, one for `read_line`, `read_until`, `contents` and
-- `receive("*l"|"*a")`: the reader's cap (`reader_buffer_size`, 64 KiB by
-- default) bounds what the call returns, without its terminator. A line, the
-- bytes before a delimiter, or everything until EOF may hold exactly cap
-- bytes; only passing the cap fails, with `"line_too_long"`, and the bytes
-- stay buffered. The terminator ("\n", "\r\n", the delimiter) never counts,
-- whatever its length. The call fails as soon as the bytes past the cap
-- cannot be the start of its terminator, without waiting for more.
-- @module coronet.reader

--- Whatever is available: at least one byte, at most `max` (default: the cap).
-- @function read
-- @tparam[opt] integer max
-- @param[opt] opts timeout
-- @treturn string, or `nil, err, code` ("closed" at EOF)

--- The next line, without its "\n" and one "\r" before it. At EOF an
-- unterminated tail stays readable with `read` or `contents`. The line may
-- hold up to cap bytes, its terminator not counted (see the module's cap rule).
-- @function read_line
-- @param[opt] opts timeout
-- @treturn string, or `nil, err, code`

--- The bytes before `delim`; with `{keep = true}` the delimiter is included.
-- Up to cap bytes may come before the delimiter, whatever its length: the
-- delimiter never counts against the cap (see the module's cap rule).
-- `{max = n}` (an integer >= 1) bounds them tighter, for one call: the cap
-- rule with `min(n, cap)` in place of the cap, so an HTTP head may be read
-- whole with `read_until("\r\n\r\n", {max = 8192})` and a longer one fails
-- with `"line_too_long"` as soon as its first `n + 1` bytes hold no
-- delimiter, keeping the bytes. A bad `max` raises before any wait.
-- @function read_until
-- @tparam string delim
-- @tparam[opt] table opts `keep`, `max`, `timeout`
-- @treturn string, or `nil, err, code`

--- Exactly `n` bytes (`n` may exceed the cap: the buffer grows for this call).
-- @function really_read
-- @tparam integer n
-- @param[opt] opts timeout
-- @treturn string, or `nil, err, code` ("closed" if EOF comes first; the bytes stay)

--- The next `n` bytes, left buffered.
-- @function peek
-- @tparam integer n
-- @param[opt] opts timeout
-- @treturn string, or `nil, err, code`

--- Everything until EOF: up to cap bytes; a peer that sends more fails the
-- call with `"line_too_long"`, keeping the bytes.
-- @function contents
-- @param[opt] opts timeout
-- @treturn string, or `nil, err, code`

--- LuaSocket's receive: `"*l"` (or `"l"`), `"*a"` (or `"a"`) or a byte count,
-- with an optional prefix. A fractional count is truncated (2.5 reads 2
-- bytes), as in LuaSocket. On timeout or close it returns
-- `nil, "timeout"|"closed", partial`, handing over (consuming) the partial
-- bytes; `"*a"` at EOF returns what there is. `nil, "busy", prefix` (another
-- fiber is reading) and `nil, "line_too_long", prefix` consume nothing.
-- @function receive
-- @param[opt="*l"] pattern
-- @tparam[opt] string prefix

-- Non-waiting reads: `try_read_line`, `try_really_read`, `try_read_until`,
-- `try_read`, `peek_at` and `discard` take what is buffered now. They never wait nor
-- yield, so they work anywhere (the main thread, a coroutine of your own, a
-- `table.sort` comparator), take no timeout, and are not "busy" while
-- another fiber waits on the reader: they consume, and the waiting read goes
-- on with what is left. On a closed reader or socket they see an empty
-- buffer (nil, "" or 0) and never raise. Counts and offsets are integers
-- >= 0; anything else (a negative, 1.5, a string) raises. A parser drains a
-- pipelined batch with them, then waits once (`wait_activity` or a read).

--- The next line if a whole one is buffered: without its "\n" and one "\r"
-- before it (a lone "\r" stays), consumed with its terminator; `nil` if no
-- whole line is buffered (nothing consumed). The cap rule of `read_line`
-- holds, and more: the buffer holds at most cap bytes unless a waiting read
-- grows it, so once it is full without a "\n" the line can never complete:
-- `nil, err, "line_too_long"`, consuming nothing (`try_read` or `discard`
-- then clear the way). A line of cap - 1 bytes and its "\n" fits.
-- @function try_read_line
-- @treturn string, or `nil`, or `nil, err, "line_too_long"`

--- Exactly `n` buffered bytes, consumed, or `nil` if fewer are buffered
-- (nothing consumed). `n = 0` gives "". With more sizes, the consecutive
-- fields of those sizes, one string each, all consumed, or `nil` while
-- fewer bytes than their sum are buffered: a field and what follows it in
-- one call, e.g. a RESP bulk string and its "\r\n"
-- (`local data, crlf = r:try_really_read(n, 2)`), a header and a body. Every
-- size is checked before anything is consumed.
-- @function try_really_read
-- @tparam integer n
-- @tparam[opt] integer ... more sizes
-- @treturn string (one per size) or nil

--- The buffered bytes before `delim` (with it if `keep`), consumed with
-- the delimiter, or `nil` if it is not buffered yet (nothing consumed).
-- `read_until`'s cap rule holds, with `min(max, cap)` when `max` is given;
-- and, as for `try_read_line`, a full buffer without the delimiter is
-- `nil, err, "line_too_long"`, consuming nothing. A pipelined batch of HTTP
-- heads drains with it: `r:try_read_until("\r\n\r\n", {max = 8192})`.
-- An empty delimiter, a bad `max` or an option that is not a table raises.
-- @function try_read_until
-- @tparam string delim
-- @tparam[opt] table opts `keep` (boolean), `max` (integer >= 1)
-- @treturn string, or `nil`, or `nil, err, "line_too_long"`

--- Up to `max` buffered bytes (default: all of them), consumed; "" when none.
-- @function try_read
-- @tparam[opt] integer max
-- @treturn string

--- Up to `n` bytes starting at byte `offset` (0-based) of the buffered bytes,
-- never consumed; "" when `offset` is at or past their end.
-- @function peek_at
-- @tparam integer offset
-- @tparam integer n
-- @treturn string

--- Drops up to `n` buffered bytes.
-- @function discard
-- @tparam integer n
-- @treturn integer how many were dropped: min(n, buffered)

--- Waits for the reader's next read event without reading: `true` once
-- bytes arrive (whoever consumes them), even if some were already
-- buffered. Fails with `nil, err, code`: "closed" at the peer's EOF and
-- once the reader or the socket is closed, the error's code when the input
-- ends with one ("ECONNRESET"...), "timeout", "cancelled". Once the input
-- has ended it fails at once (no fiber needed). Any number of fibers may
-- wait at once, beside a fiber waiting in a read (never "busy"), and their
-- waits never change how much the reader buffers: a full buffer stays full
-- until something consumes. A timeout (seconds, or `false`/nil for none,
-- the default; the socket's read timeout does not apply) is not sticky.
-- @function wait_activity
-- @tparam[opt] number timeout
-- @treturn true, or `nil, err, code`

--- Moves every byte from this reader to `writer` (another socket's, or this
-- socket's own) until EOF, in C: no Lua string per chunk, no buffer but the
-- two halves' own (Async's `Reader.transfer`, Eio's `Flow.copy`). Bytes
-- already buffered go first. Back-pressure both ways: while the writer's
-- pending bytes are above its mark (`writer_buffer_size`) the transfer
-- stops taking bytes, so this reader fills to its cap and stops reading
-- (the sender is held back by the kernel); it goes on once the writer
-- drains. A writer whose peer never reads holds at most its mark plus one
-- chunk (the reader's cap). It waits in the calling fiber with no timeout
-- (the socket's read timeout does not apply); a cancel ends it. At EOF it
-- returns the count moved and, unless `close_writer = false`, closes the
-- writer as `writer:close()` does (flush, then the sending side shuts down:
-- the half-close passes through); this reader is left open. A read error,
-- a write error, a close of either half or socket (by another fiber), or a
-- cancel gives `nil, err, code, n` with the count moved so far; bytes not
-- yet moved stay in the reader. A close of the writer's socket while the
-- transfer waits for bytes is noticed when they come or at EOF. Like a
-- read, "busy" (with 0) while another fiber waits on the reader or for room
-- on the writer; do not read from the reader while it transfers.
-- Raises outside a fiber, on a closed reader or writer, on a bad option.
-- @function transfer_to
-- @param writer a `coronet.writer`
-- @tparam[opt] table opts `close_writer` (boolean, default true)
-- @treturn integer the count moved, or `nil, err, code, n`

--- Bytes buffered and not yet read.
-- @function buffered
-- @treturn integer

--- The reader's cap (`reader_buffer_size`).
-- @function capacity
-- @treturn integer

--- True when nothing is buffered and the peer has finished (or the reader is closed).
-- @function at_eof
-- @treturn boolean

--- Closes the reading half; the descriptor closes once the writer has closed too.
-- A fiber waiting on the reader gets `nil, err, "closed"`.
-- @function close

--- True once closed.
-- @function is_closed
-- @treturn boolean

--- The socket this reader belongs to.
-- @function socket

return require("coronet.core").methods.reader
