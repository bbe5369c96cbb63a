--- Async's Tcp: connect, connect_sock, with_connection.
-- Options (all optional): `timeout` (seconds for DNS and every attempt
-- together, default 10, false for none), `attempt_timeout` (seconds for each
-- address's attempt; by default each attempt gets an equal share of what is
-- left of `timeout` among the addresses left, so an unreachable first
-- address leaves time for the others), `interrupt` (a deferred that aborts
-- the attempt), `reader_buffer_size`, `writer_buffer_size`,
-- `buffer_age_limit` (seconds, default 120, or "unlimited"), `close_timeout`
-- (bound on the final flush, default 5 s), `socket` (an unconnected socket
-- from `tcp.socket()`: it is tried once, at the first address of its family,
-- and closed if that attempt fails), `happy_eyeballs` (off by default: the
-- addresses are tried one at a time; `true` or `{delay = s}` races them as
-- RFC 8305 says, see `coronet.net.with_tcp_connect`), `tls` (a table of
-- client options, see `coronet.tls`: the socket returned has finished its
-- handshake; `server_name` defaults to the host connected to).
-- @module coronet.tcp
local core = require "coronet.core"
local errors = require "coronet.errors"
local tls = require "coronet.tls"
require "coronet.socket" -- adds the methods written in Lua to sockets, readers and writers
local where = require "coronet.where"

local pack, unpack = table.pack, table.unpack

local M = {
  Where_to_connect = where.Where_to_connect,
  Where_to_listen = where.Where_to_listen,
  Bind_to_address = where.Bind_to_address,
  Bind_to_port = where.Bind_to_port,
}

local DEFAULT_TIMEOUT = 10
local DEFAULT_BUFFER_AGE_LIMIT = 120

local DEFAULT_HAPPY_EYEBALLS_DELAY = 0.25

--- The Happy Eyeballs delay (seconds) an option asks for: `false` none,
-- `true` the default (0.25 s), `{delay = s}` s (> 0); `nil` gives `default`.
-- Raises on anything else, naming `fn`.
-- @param opt the option's value
-- @tparam ?number default
-- @tparam string fn
-- @treturn ?number
function M.happy_eyeballs_delay(opt, default, fn)
  if opt == nil then return default end
  if opt == false then return nil end
  if opt == true then return DEFAULT_HAPPY_EYEBALLS_DELAY end
  local delay = type(opt) == "table" and opt.delay
  if delay == nil and type(opt) == "table" then return DEFAULT_HAPPY_EYEBALLS_DELAY end
  if type(delay) ~= "number" or not (delay > 0) then
    error(fn .. ": option 'happy_eyeballs' must be true, false or {delay = seconds > 0}", 3)
  end
  return delay
end

-- Checks where_to (argument 1 of fn) and opts (argument n, optional),
-- raising at fn's caller; returns opts or {}.
local function check_request(where_to, opts, fn, n)
  if type(where_to) ~= "table" or not (where_to.host or where_to.address) then
    errors._typeerror(1, fn, "Where_to_connect value", where_to, 2)
  end
  if opts == nil then return {} end
  if type(opts) ~= "table" then errors._typeerror(n, fn, "table of options", opts, 2) end
  local interrupt = opts.interrupt
  if interrupt ~= nil and not (type(interrupt) == "table" and type(interrupt.is_determined) == "function") then
    errors._optionerror(fn, "interrupt", "a deferred", interrupt, 2)
  end
  if opts.tls ~= nil and type(opts.tls) ~= "table" then errors._optionerror(fn, "tls", "a table", opts.tls, 2) end
  return opts
end

local function connect_request(where_to, opts, fn)
  local timeout = opts.timeout
  if timeout == nil and opts.socket then timeout = opts.socket:gettimeouts() end -- its connect timeout
  if timeout == nil then timeout = DEFAULT_TIMEOUT end
  return { host = where_to.host, port = where_to.port, address = where_to.address, timeout = timeout,
           attempt_timeout = opts.attempt_timeout, socket = opts.socket,
           happy_eyeballs_delay = M.happy_eyeballs_delay(opts.happy_eyeballs, nil, fn),
           caller = fn }
end

-- The interrupt deferred ends this fiber's connect wait (and only that
-- wait). Returns the upon handle, for the caller to cancel when the connect
-- ends however it ends (a <close> variable), so that a shared interrupt
-- collects no callbacks and a later wait of the fiber is never cut.
local function arm_interrupt(interrupt, state)
  if not interrupt then return nil end
  local fiber = core.current()
  if not fiber then return nil end
  local ticket = fiber:ticket()
  return interrupt:upon(function()
    if fiber:interrupt(ticket) then state.interrupted = true end
  end)
end

local function connect_sock(where_to, opts, fn)
  local state = {}
  local request = connect_request(where_to, opts, fn)
  if opts.interrupt and opts.interrupt:is_determined() then
    return nil, errors.new("cancelled", "connect to " .. where_to.description .. ": interrupted"), "cancelled"
  end
  local armed <close> = arm_interrupt(opts.interrupt, state)
  local sock, err, code = core.connect(request)
  if sock then return sock end
  if state.interrupted then
    err = errors.new("cancelled", "connect to " .. where_to.description .. ": interrupted", err.address)
  end
  return nil, err, code
end

--- Connects and returns the socket.
-- @param where_to a Where_to_connect value
-- @tparam[opt] table opts see the module
-- @return socket, or `nil, err, code`
function M.connect_sock(where_to, opts)
  opts = check_request(where_to, opts, "tcp.connect_sock", 2)
  return connect_sock(where_to, opts, "tcp.connect_sock")
end

--- The buffer options of `opts` (`reader_buffer_size`, `writer_buffer_size`,
-- `buffer_age_limit`, `close_timeout`), checked, with their defaults;
-- raises naming `fn` on a bad `buffer_age_limit`.
-- @function buffer_options
-- @tparam table opts
-- @tparam string fn
-- @treturn table
local function buffer_options(opts, fn)
  local age = opts.buffer_age_limit
  if age == nil then age = DEFAULT_BUFFER_AGE_LIMIT end
  if age == "unlimited" then age = math.huge end
  assert(type(age) == "number" and age > 0, fn .. ": option 'buffer_age_limit' must be seconds > 0 or \"unlimited\"")
  return { reader_buffer_size = opts.reader_buffer_size, writer_buffer_size = opts.writer_buffer_size,
           buffer_age_limit = age, close_timeout = opts.close_timeout }
end
M.buffer_options = buffer_options

-- connect, as `fn` (argument n holds opts).
local function connect(where_to, opts, fn, n)
  opts = check_request(where_to, opts, fn, n)
  local buffers = buffer_options(opts, fn)
  core.check_stream_options(buffers, fn) -- before connecting: a bad option leaves nothing open
  local sock, err, code = connect_sock(where_to, opts, fn)
  if not sock then return nil, err, code end
  sock:configure(buffers)
  if opts.tls then
    local host = where_to.host or where_to.address.ip
    local ok, terr, tcode = tls.connect(sock, opts.tls, host)
    if not ok then return nil, terr, tcode end
  end
  return sock, sock:reader(), sock:writer()
end

--- Connects and returns the socket with its reader and writer.
-- @param where_to a Where_to_connect value
-- @tparam[opt] table opts see the module
-- @return socket, reader, writer; or `nil, err, code`
function M.connect(where_to, opts) return connect(where_to, opts, "tcp.connect", 2) end

--- Connects, calls `f(socket, reader, writer)`, and when `f` returns or
-- raises flushes (bounded by close_timeout) and closes. Returns `f`'s
-- results once the descriptor is closed, or re-raises `f`'s error after
-- closing. A failed connect returns `nil, err, code` without calling `f`.
-- @param where_to a Where_to_connect value
-- @tparam function f
-- @tparam[opt] table opts see the module
function M.with_connection(where_to, f, opts)
  if type(f) ~= "function" then errors._typeerror(2, "tcp.with_connection", "function", f) end
  local sock, reader, writer = connect(where_to, opts, "tcp.with_connection", 3)
  if not sock then return nil, reader, writer end
  local result = pack(xpcall(f, debug.traceback, sock, reader, writer))
  sock:close()
  sock:close_finished()
  if not result[1] then error(result[2], 0) end
  return unpack(result, 2, result.n)
end

--- A new unconnected TCP socket (for bind-before-connect); pass it as `opts.socket`.
-- @tparam[opt="inet"] string family "inet" or "inet6"
M.socket = core.tcp_socket

--- Wraps an inherited connected descriptor (tcp or unix) as a socket.
-- @tparam integer fd
M.adopt_fd = core.adopt_fd

M.Server = setmetatable({}, { __index = function(t, k)
  local server = require "coronet.tcp_server"
  setmetatable(t, { __index = server })
  return server[k]
end })

return M
