--- A connected (or connectable) socket. Every method is also a function of
-- this module taking the socket first (`socket.close(s)` is `s:close()`).
-- Most methods are written in C (csrc/binding/lstream.c); this module
-- documents them, adds the flow conveniences of Eio (`read`, `write`,
-- `copy_to`, written here in Lua) and returns the methods' table. The
-- modules that give sockets (coronet.tcp, coronet.net, a worker state's
-- server) load it, and it loads the reader's and writer's Lua methods, so
-- every socket and its halves have the same methods whichever module, or
-- whichever Lua state, made them.
-- @module coronet.socket
local core = require "coronet.core"
local tls = require "coronet.tls"
local errors = require "coronet.errors"
require "coronet.reader"
require "coronet.writer"

local methods = core.methods.socket
local SOCKET = debug.getregistry()["coronet.socket"] -- the class's metatable, as luaL_getmetatable gives it

-- Raises unless sock is a socket, naming fn (the methods written in Lua).
local function check_socket(sock, fn)
  if getmetatable(sock) ~= SOCKET then errors._typeerror(1, fn, "coronet.socket", sock, 2, true) end
end

--- The peer's address value (`tostring`, `.family`, `.ip`, `.port`, `.path`).
-- @function getpeername
-- @return address, or `nil, err, code`

--- The local address value.
-- @function getsockname
-- @return address, or `nil, err, code`

--- The socket's reader (made once, then the same value).
-- @function reader

--- The socket's writer (made once, then the same value).
-- @function writer

--- Sets `"tcp-nodelay"` (on by default), `"keepalive"` (true/false, or the
-- idle seconds before probes) or `"reuseaddr"`.
-- @function setoption
-- @tparam string name
-- @param value
-- @treturn true, or `nil, err, code` (ENOTSUP for tcp options on unix sockets)

--- Reads an option back as a boolean.
-- @function getoption
-- @tparam string name
-- @treturn boolean, or `nil, err, code`

--- `"send"` closes the writer (flush, then FIN), `"receive"` the reader,
-- `"both"` both.
-- @function shutdown
-- @tparam[opt="both"] string how

--- The descriptor (owned by coronet: do not close it).
-- @function getfd
-- @treturn integer, or `nil, err, "closed"` once closing has started

--- Per-object timeouts in seconds: `connect` (used by `tcp.connect` with
-- `opts.socket`), `send` (writes and flushes that wait), `read` (every read).
-- `false` for none, `nil` to keep. Returns the socket.
-- @function settimeouts

--- The three timeouts (`false` for none).
-- @function gettimeouts

--- Binds an unconnected socket (from `tcp.socket()`) before connecting.
-- @function bind
-- @param address an address value
-- @treturn true, or `nil, err, code` (`"closed"` once closing has started)

--- Starts the graceful close: the reader closes, the writer flushes (bounded
-- by `close_timeout`) and shuts down, then the descriptor closes. Never waits;
-- idempotent.
-- @function close

--- Closes at once, dropping unflushed bytes.
-- @function abort

--- True once closing has started.
-- @function is_closed
-- @treturn boolean

--- Waits until the descriptor is closed.
-- @function close_finished
-- @tparam[opt] number timeout
-- @treturn true, or `nil, err, code`

--- `{bytes_in = n, bytes_out = n}`.
-- @function stats

--- Applies `reader_buffer_size`, `writer_buffer_size`, `buffer_age_limit`
-- and `close_timeout` (the options of `tcp.connect`). Returns the socket.
-- Sizes are positive integers; `buffer_age_limit` is seconds > 0 and
-- `close_timeout` seconds >= 0, both rounded up to whole milliseconds (so
-- 1e-9 is 1 ms, never "off", and a `close_timeout` of 0 means at most 1 ms);
-- `math.huge` means no bound (it turns the age limit off). An absent option
-- always keeps its current value. A bad value
-- raises an error naming `socket:configure` (or `tcp.connect`,
-- `tcp.Server.create`, which check the same way) and the option.
-- @function configure
-- @tparam table opts

--- Eio's `single_read`: whatever is available, at least one byte and at
-- most `max` (the reader's `read`); `nil, err, "closed"` at end of stream.
-- @function read
-- @tparam[opt] integer max
-- @treturn string, or `nil, err, code`
function methods.read(sock, max)
  check_socket(sock, "read")
  if max ~= nil and type(max) ~= "number" then errors._typeerror(2, "read", "number", max, 1, true) end
  return sock:reader():read(max)
end

--- Writes strings (or arrays of strings) through the socket's writer, with
-- its back-pressure: returns once the bytes are buffered below the
-- high-water mark; `sock:writer():flush()` or closing the socket sends them.
-- @function write
-- @treturn true, or `nil, err, code`
function methods.write(sock, ...)
  check_socket(sock, "write")
  return sock:writer():write(...)
end

-- Adds the bytes copied so far to an error value (any other value passes).
local function with_copied(err, copied)
  if type(err) == "table" then err.copied = copied end
  return err
end

--- Copies everything `sock` reads to `other` until end of stream, then
-- flushes `other`. Back-pressure: each write waits while `other`'s writer
-- is above its high-water mark, and nothing more is read meanwhile, so the
-- memory held is bounded by the two buffers whatever the sizes. Returns the
-- number of bytes copied, or `nil, err, code` (with `err.copied`, the bytes
-- copied before the failure: a reset of either peer, a timeout of either
-- socket, a cancel). `other` not a socket raises.
-- @function copy_to
-- @param other a socket (a flow)
-- @treturn integer, or `nil, err, code`
function methods.copy_to(sock, other)
  check_socket(sock, "copy_to")
  if getmetatable(other) ~= SOCKET then errors._typeerror(2, "copy_to", "coronet.socket", other, 1, true) end
  local reader, writer = sock:reader(), other:writer()
  local copied = 0
  while true do
    local data, err, code = reader:read()
    if not data then
      if code ~= "closed" then return nil, with_copied(err, copied), code end
      break
    end
    local ok, werr, wcode = writer:write(data)
    if not ok then return nil, with_copied(werr, copied), wcode end
    copied = copied + #data
  end
  local ok, err, code = writer:flush()
  if not ok then return nil, with_copied(err, copied), code end
  return copied
end

--- Upgrades a connected socket to TLS (SMTP's, IMAP's or Postgres's
-- STARTTLS) and waits for the handshake; reads and writes are then
-- plaintext through the same reader and writer. Bytes the reader already
-- holds unread are the first the TLS engine reads, not lost. The options
-- are a client's, or with `server = true` a server's (coronet.tls lists
-- them); a client that verifies needs `server_name`. The writer must hold
-- no unflushed bytes and no other fiber may be reading (`busy` otherwise).
-- A bad option, or a socket with TLS already, raises. A handshake that
-- fails (timeout and cancel included) closes the socket: later calls say
-- `closed`.
-- @function starttls
-- @tparam table opts
-- @treturn true, or `nil, err, code` (kind `"tls"`: `tls_handshake`,
-- `tls_verify` with OpenSSL's reason in the message, `tls_config`; or
-- `timeout` after `handshake_timeout`, default 10 s)
function methods.starttls(sock, opts)
  check_socket(sock, "starttls")
  if opts ~= nil and type(opts) ~= "table" then errors._typeerror(2, "starttls", "table of options", opts, 1, true) end
  return tls.starttls(sock, opts)
end

--- What TLS negotiated: `version` ("TLSv1.3"), `cipher`, `alpn` (nil if
-- none), `peer_subject` ("CN=..."; nil without a peer certificate),
-- `peer_certificate`, `verified`, `reused` (a resumed session), and for a
-- client `session`, a string to pass back as the `session` option (in TLS
-- 1.3 it comes with the server's first bytes after the handshake: read
-- something first).
-- @function tls_info
-- @treturn table, or nil for a socket without TLS
methods.tls_info = core.tls_info

return methods
