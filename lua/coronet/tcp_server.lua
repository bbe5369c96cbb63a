--- Async's Tcp.Server: a listener whose handler runs in a fiber per client.
-- Options (all optional): `max_connections` (default 10000),
-- `max_accepts_per_batch` (default 64), `backlog` (default 511),
-- `on_handler_error` ("raise" by default, "ignore", or function(address, err);
-- the value the handler raised arrives untouched, nil and tables included,
-- and a string gets the handler's traceback; "ignore" logs it and keeps
-- serving even if its __tostring raises),
-- `buffer_age_limit` (default 120 s, or "unlimited"), `reader_buffer_size`,
-- `writer_buffer_size`, `close_timeout`, `reuse_port`, `socket` (a bound
-- listening descriptor to use instead of the address), `tls` (a table of
-- server options, see `coronet.tls`: each connection's handshake runs in its
-- own fiber before the handler). Counts are positive
-- integers and durations as in `socket:configure`; a bad value raises an
-- error naming `tcp.Server.create` and the option.
-- @module coronet.tcp_server
local core = require "coronet.core"
local deferred = require "coronet.deferred"
local errors = require "coronet.errors"
local tcp = require "coronet.tcp"
local tls = require "coronet.tls"

local Server = {}
Server.__index = Server

local M = {}

local check_server = errors._self_checker(Server, "coronet tcp server")

-- The on_handler_error option of fn (raising at fn's caller).
local function check_error_mode(mode, fn)
  if mode == nil then return "raise" end
  if not (mode == "raise" or mode == "ignore" or type(mode) == "function") then
    errors._optionerror(fn, "on_handler_error", '"raise", "ignore" or a function', mode, 3)
  end
  return mode
end

-- Checks create's arguments as `fn`, raising at fn's caller (`level` as
-- for errors._argerror, from this function's caller); `inet` refuses a unix
-- address. Returns opts or {}.
local function check_create(where_to, handler, opts, fn, inet, level)
  level = (level or 1) + 1
  if type(where_to) ~= "table" or not core.is_address(where_to.address) then
    errors._typeerror(1, fn, "Where_to_listen value", where_to, level)
  end
  if inet and where_to.address.family == "unix" then
    errors._argerror(1, fn, "an inet address expected, got a unix one", level)
  end
  if type(handler) ~= "function" then errors._typeerror(2, fn, "handler function", handler, level) end
  if opts ~= nil and type(opts) ~= "table" then errors._typeerror(3, fn, "table of options", opts, level) end
  return opts or {}
end

-- The text of an error value for the log. Any value may be raised, even one
-- whose __tostring raises: describing it must not end the run.
local function describe(err)
  local ok, text = pcall(tostring, err)
  if ok and type(text) == "string" then return text end
  return ("a %s value (its __tostring failed)"):format(type(err))
end

-- Runs in the handler's fiber after it raised.
local function handler_failed(server, address, err)
  local mode = server.on_handler_error
  if mode == "ignore" then
    core.log("coronet: handler for " .. tostring(address) .. " raised: " .. describe(err))
    return
  end
  if type(mode) == "function" then
    local ok, err2 = pcall(mode, address, err)
    if ok then return end
    err = err2
  end
  server:close()
  error(err, 0)
end

-- The handler's message handler: a string gets the traceback; any other
-- value (nil, a table, an error object) passes untouched, as raised
-- (debug.traceback would turn nil into a bare traceback).
local function with_traceback(err)
  if type(err) ~= "string" then return err end
  return debug.traceback(err, 2)
end

local function handler_ended(server)
  server.active = server.active - 1
  if server.active == 0 and server.closed then server.handlers_idle:fill() end
end

-- The TLS handshake of an accepted connection, in its own fiber; one that
-- fails closes that connection only.
local function handshake(server, sock, address)
  if tls.accept(sock, server.tls, server.tls_opts, address) then return true end
  sock:close()
  handler_ended(server)
  return false
end

-- The body of each connection's fiber (kept shallow: every frame is stack
-- that an idle connection's coroutine holds).
local function serve(server, sock, address)
  if server.closed then -- accepted before close, but no handler starts after it
    sock:close()
    return
  end
  server.active = server.active + 1
  if server.tls and not handshake(server, sock, address) then return end
  local ok, err
  if server.halves then
    ok, err = xpcall(server.handler, with_traceback, address, sock:reader(), sock:writer())
  else
    ok, err = xpcall(server.handler, with_traceback, address, sock)
  end
  sock:close()
  handler_ended(server)
  -- A cancelled handler (run's teardown, or an explicit cancel) unwinding
  -- with an error is not a handler error.
  if not ok and not core.current():is_cancelled() then handler_failed(server, address, err) end
end

local function create_sock(where_to, handler, opts, fn)
  local server = setmetatable({ handler = handler, on_handler_error = check_error_mode(opts.on_handler_error, fn),
                                active = 0, closed = false, where = where_to,
                                handlers_idle = deferred.ivar(), finished = deferred.ivar() }, Server)
  local listen_opts = tcp.buffer_options(opts, fn)
  listen_opts.caller = fn
  listen_opts.max_connections, listen_opts.max_accepts_per_batch = opts.max_connections, opts.max_accepts_per_batch
  listen_opts.backlog, listen_opts.reuse_port = opts.backlog, opts.reuse_port
  server.halves = opts.halves
  if opts.tls then -- the context first: a bad certificate or key fails here, before any client
    local ctx, err, code = tls.server_context(opts.tls)
    if not ctx then return nil, err, code end
    server.tls, server.tls_opts = ctx, opts.tls
  end
  local core_server, err, code = core.listen(opts.socket or where_to.address, listen_opts, serve, server)
  if not core_server then return nil, err, code end
  server.core = core_server
  return server
end

--- Starts listening; `handler(address, socket)` runs in a new fiber per client.
-- Binds and listens before returning and never waits.
-- @param where_to a Where_to_listen value
-- @tparam function handler
-- @tparam[opt] table opts see the module
-- @return the server, or `nil, err, code` if binding failed
function M.create_sock(where_to, handler, opts)
  opts = check_create(where_to, handler, opts, "tcp.Server.create_sock")
  return create_sock(where_to, handler, opts, "tcp.Server.create_sock")
end

-- create, as fn.
local function create(where_to, handler, opts, fn)
  local with_halves = { halves = true }
  for k, v in pairs(opts) do with_halves[k] = v end
  return create_sock(where_to, handler, with_halves, fn)
end

--- Like create_sock, but the handler gets `(address, reader, writer)`; both close when it ends.
-- @param where_to a Where_to_listen value
-- @tparam function handler
-- @tparam[opt] table opts see the module
function M.create(where_to, handler, opts)
  opts = check_create(where_to, handler, opts, "tcp.Server.create")
  return create(where_to, handler, opts, "tcp.Server.create")
end

--- create for inet addresses only.
function M.create_inet(where_to, handler, opts)
  opts = check_create(where_to, handler, opts, "tcp.Server.create_inet", true)
  return create(where_to, handler, opts, "tcp.Server.create_inet")
end

--- create_sock for inet addresses only.
function M.create_sock_inet(where_to, handler, opts)
  opts = check_create(where_to, handler, opts, "tcp.Server.create_sock_inet", true)
  return create_sock(where_to, handler, opts, "tcp.Server.create_sock_inet")
end

--- The port (inet) or path (unix) the server listens on; for a
-- `Where_to_listen.create{listening_on = f}`, `f(the bound address)`.
function Server:listening_on()
  check_server(self, "listening_on")
  local address = self.core:address()
  if self.where.listening_on then return self.where.listening_on(address) end
  if address.family == "unix" then return address.path end
  return address.port
end

--- The address value the server listens on.
function Server:listening_on_address()
  check_server(self, "listening_on_address")
  return self.core:address()
end

--- The listening descriptor (accepting on it directly bypasses max_connections),
-- or `nil, err, "closed"` once closing has started.
function Server:listening_socket()
  check_server(self, "listening_socket")
  return self.core:fileno()
end

-- Keeps self.finished for what the latest close asked for. A call that asks
-- for more than is done (close_existing_connections after a plain close
-- that already finished) gets a fresh ivar; one fiber at a time waits for
-- the core and fills the current ivar with true.
local function watch_close(self)
  local done = self.core:is_close_finished()
  if self.finished.filled and not done then self.finished = deferred.ivar() end
  if self.finished.filled or self.watching_close then return end
  if done then -- e.g. closed by the end of coronet.run
    self.finished:fill(true)
    return
  end
  self.watching_close = true
  core.spawn(function()
    local ok = self.core:close_wait()
    self.watching_close = false
    if ok and not self.finished.filled then self.finished:fill(true) end
  end)
end

--- Stops accepting and closes the listener; with `close_existing_connections`,
-- closes every connection too. Idempotent. Returns the close_finished
-- deferred, determined (with `true`) once what this call asked for is done:
-- after a plain close that finished, a call with close_existing_connections
-- returns a new deferred that waits for the connections.
-- No handler starts after close.
-- @tparam[opt] table opts `{close_existing_connections=bool}`
function Server:close(opts)
  check_server(self, "close")
  if opts ~= nil and type(opts) ~= "table" then errors._typeerror(2, "close", "table of options", opts, 1, true) end
  local close_existing = opts ~= nil and opts.close_existing_connections or false
  self.core:close(close_existing)
  if not self.closed then
    self.closed = true
    if self.active == 0 then self.handlers_idle:fill() end
  end
  watch_close(self)
  return self.finished.deferred
end

--- Determined once the listener (and, when asked, every connection) is closed.
function Server:close_finished()
  check_server(self, "close_finished")
  return self.finished.deferred
end

--- Determined once close_finished is and every handler has returned.
function Server:close_finished_and_handlers_determined()
  check_server(self, "close_finished_and_handlers_determined")
  local ivar = deferred.ivar()
  core.spawn(function()
    self.finished.deferred:wait()
    self.handlers_idle.deferred:wait()
    ivar:fill()
  end)
  return ivar.deferred
end

--- True once close has been called.
function Server:is_closed()
  check_server(self, "is_closed")
  return self.closed or self.core:is_closed()
end

--- Connections whose descriptor is not yet closed.
function Server:num_connections()
  check_server(self, "num_connections")
  return self.core:num_connections()
end

--- Accept and close at once, without calling the handler, while `drop` is true.
function Server:set_drop_incoming_connections(drop)
  check_server(self, "set_drop_incoming_connections")
  self.core:set_drop_incoming_connections(drop)
end

--- Counters: connections, accepted, dropped, accept_errors, bytes_in, bytes_out.
function Server:stats()
  check_server(self, "stats")
  return self.core:stats()
end

--- `local server <close> = ...` closes the server at the end of the scope.
function Server:__close() self:close() end

function Server:__tostring()
  return ("coronet.server (%s%s)"):format(tostring(self.core:address()), self.closed and ", closed" or "")
end

-- Every server method is also a function of this module taking the server first.
for name, fn in pairs(Server) do
  if type(fn) == "function" and not name:match("^__") then M[name] = fn end
end

M.Server = Server
return M
