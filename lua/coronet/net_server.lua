--- coronet.net, listening and serving (Eio's `Net.listen`, `accept`,
-- `accept_fork` and `run_server`), a view over the foundation's server: one
-- accept loop (csrc/core/server.c), which a listening socket keeps paused
-- until `accept` asks for one connection or `run_server` for all of them.
-- Failures that come from I/O are returned as `nil, err, code`; misuse raises.
-- @module coronet.net_server
local core = require "coronet.core"
local deferred = require "coronet.deferred"
local errors = require "coronet.errors"
local tls = require "coronet.tls"
require "coronet.socket" -- flows have their Lua methods in every state, worker states included

local M = {}

-- A listening socket from `net.listen` (documented below, as the Listening class).
local Listening = {}
Listening.__index = Listening

local check_self = errors._self_checker(Listening, "coronet.net listening socket")

local function check_listening(listening, fn)
  if getmetatable(listening) ~= Listening then
    errors._typeerror(1, "coronet.net." .. fn, "listening socket from net.listen", listening, 2)
  end
  return listening
end

-- Checked before anything is made, so a bad `sw` leaves nothing open.
local function check_opts(opts, fn, n)
  if opts ~= nil and type(opts) ~= "table" then
    errors._typeerror(n, "coronet.net." .. fn, "table of options", opts, 2)
  end
  local sw = opts and opts.sw
  if sw ~= nil and (type(sw) ~= "table" or type(sw.attach) ~= "function") then
    error(("coronet.net.%s: option 'sw' must be a switch"):format(fn), 3)
  end
  return opts or {}
end

-- The address a string error gets as context (Eio adds the client's address
-- to the errors a handler raises); a table gets an `address` field when it
-- has none. Any other value passes untouched.
local function with_address(err, address)
  if type(err) == "string" then return ("connection from %s: %s"):format(tostring(address), err) end
  if type(err) == "table" then pcall(function() if err.address == nil then err.address = address end end) end
  return err
end

-- A string error gets the handler's traceback; other values pass as raised.
local function with_traceback(err)
  if type(err) ~= "string" then return err end
  return debug.traceback(err, 2)
end

-- Raises, through core.park's own checks, unless the running fiber can wait
-- here (not the main thread, a coroutine of the user's, a table.sort
-- comparator...): called before a waiter or a credit is added, so a raise
-- leaves nothing behind (DESIGN rule 12).
local function check_can_wait()
  if not core.current() or not coroutine.isyieldable() then core.park() end
end

local function closed_error(what)
  return errors.new("closed", what .. ": the listening socket is closed")
end

-- Hands a connection accepted for `net.accept` to the oldest waiting call;
-- one whose caller gave up meanwhile waits in `ready` for the next call.
local function hand_over(listening, sock, address)
  local waiter = table.remove(listening.waiting, 1)
  if waiter then
    waiter:fill(sock, address)
  elseif listening.closed then
    sock:close()
  else
    listening.ready[#listening.ready + 1] = { sock, address }
  end
end

local serve -- run_server's per-connection body, below

-- Every accepted connection starts here, in a fiber of its own. The core
-- server holds the listening socket only through `weak` (see net.listen).
local function dispatch(weak, sock, address)
  local listening = weak[1]
  if not listening then return sock:close() end
  local state = listening.serving
  if state then return serve(state, sock, address) end
  hand_over(listening, sock, address)
end

--- Listens on `addr` (a value from `coronet.address` or `coronet.unix_address`).
-- Options: `sw` (the switch that closes it), `backlog` (given to listen(2)
-- as is, 0 included; default 511), `reuse_addr` (a unix socket file left at
-- the path is removed first; without it such a file makes listen fail with
-- EADDRINUSE; TCP listeners always set SO_REUSEADDR), `reuse_port`
-- (SO_REUSEPORT, set before bind). Nothing is accepted until `accept`,
-- `accept_fork` or `run_server` asks. A unix path is removed again when the
-- listening socket closes (only the file it bound). Without `sw`, it lives
-- until closed, collected (a waiting `accept` or `run_server` keeps it
-- reachable) or the end of `coronet.run`.
-- @param addr an address value
-- @tparam[opt] table opts
-- @treturn Listening, or `nil, err, code`
function M.listen(addr, opts)
  if not core.is_address(addr) then errors._typeerror(1, "coronet.net.listen", "address value", addr) end
  opts = check_opts(opts, "listen", 2)
  local backlog = opts.backlog
  if backlog ~= nil and (math.type(backlog) ~= "integer" or backlog < 0) then
    error("coronet.net.listen: option 'backlog' must be an integer >= 0", 2)
  end
  local listening = setmetatable({ waiting = {}, ready = {}, closed = false, reuse_port = opts.reuse_port and true,
                                   backlog = backlog }, Listening)
  local listen_opts = { paused = true, exact_backlog = backlog ~= nil, backlog = backlog,
                        reuse_port = opts.reuse_port, remove_stale = opts.reuse_addr }
  -- The core server stays anchored until its close finishes; holding the
  -- listening socket weakly lets a dropped one be collected (and closed by
  -- __gc): nothing can ask it to accept any more. A waiting accept or
  -- run_server keeps it reachable.
  local weak = setmetatable({ listening }, { __mode = "v" })
  local server, err, code = core.listen(addr, listen_opts, dispatch, weak)
  if not server then return nil, err, code end
  listening.core = server
  if opts.sw then opts.sw:attach(listening) end
  return listening
end

--- A listening socket from `net.listen`.
-- @type Listening

--- The bound address (the port the OS chose, for port 0).
-- @return an address value
function Listening:getsockname()
  check_self(self, "getsockname")
  return self.core:address()
end

--- The listening descriptor, or `nil, err, "closed"` once closing has started.
function Listening:fileno()
  check_self(self, "fileno")
  return self.core:fileno()
end

--- Starts closing: no connection is accepted afterwards; waiting `accept`
-- calls return `nil, err, "closed"`, a `run_server` on it returns once its
-- connections have finished. Connections already accepted stay open.
-- Idempotent; never waits.
function Listening:close()
  check_self(self, "close")
  if self.closed then return end
  self.closed = true
  self.core:close(false)
  for _, waiter in ipairs(self.waiting) do waiter:fill(nil, closed_error("accept"), "closed") end
  self.waiting = {}
  for _, entry in ipairs(self.ready) do entry[1]:close() end
  self.ready = {}
  local state = self.serving
  if state and not state.wake.filled then state.wake:fill("closed") end
end

--- Connections accepted from it whose descriptor is not yet closed.
function Listening:num_connections()
  check_self(self, "num_connections")
  return self.core:num_connections()
end

--- The accept loop's counters: connections, accepted, dropped, accept_errors, bytes_in, bytes_out.
function Listening:stats()
  check_self(self, "stats")
  return self.core:stats()
end

--- True once `close` was called.
function Listening:is_closed()
  check_self(self, "is_closed")
  return self.closed
end

--- Waits until the listener is closed (its descriptor, and its unix socket file).
-- @tparam[opt] number timeout seconds
-- @return true, or `nil, err, code`
function Listening:close_finished(timeout)
  check_self(self, "close_finished")
  deferred.check_timeout(timeout, "close_finished")
  return self.core:close_wait(timeout)
end

function Listening:__close() self:close() end

-- Collected without close: only the core server is left to close (its
-- accepted connections are the flows' own to close).
function Listening:__gc()
  if self.closed or not self.core then return end
  self.closed = true
  self.core:close(false)
end

function Listening:__tostring()
  return ("coronet.net.listening (%s%s)"):format(tostring(self.core:address()), self.closed and ", closed" or "")
end

-- Takes back the credit of a call that gave up, unless its connection was
-- already accepted (then it waits in `ready` for the next call).
local function give_up(listening, ivar)
  for i, waiter in ipairs(listening.waiting) do
    if waiter == ivar then
      table.remove(listening.waiting, i)
      if not listening.closed then listening.core:add_credit(-1) end
      return
    end
  end
end

--- Accepting and serving.
-- @section serving

--- Accepts one connection: waits until a client connects.
-- @tparam Listening listening
-- @tparam[opt] table opts `sw`: the switch the flow is attached to
-- @return flow (a socket), client address; or `nil, err, code`
function M.accept(listening, opts)
  check_listening(listening, "accept")
  opts = check_opts(opts, "accept", 2)
  if listening.serving then error("coronet.net.accept: this listening socket is serving (run_server)", 2) end
  local sock, address
  if #listening.ready > 0 then
    sock, address = table.unpack(table.remove(listening.ready, 1))
  elseif listening.closed then
    return nil, closed_error("accept"), "closed"
  else
    check_can_wait()
    local ivar = deferred.ivar()
    listening.waiting[#listening.waiting + 1] = ivar
    listening.core:add_credit(1)
    local err, code
    sock, err, code = ivar.deferred:wait()
    if not sock then
      give_up(listening, ivar)
      return nil, err, code
    end
    address = err
  end
  if opts.sw then opts.sw:attach(sock) end
  return sock, address
end

--- Accepts one connection and runs `handler(flow, address)` in a new fiber
-- (forked on `opts.sw` when given, the flow attached to it, so the switch
-- waits for the flow's close to finish); the flow closes when the handler
-- returns. A handler error goes to `opts.on_error(err, address)` with the
-- client's address added (a string is prefixed "connection from <address>: ",
-- a table gets `err.address` when it has none); without `on_error` it fails
-- the switch (or, without a switch, the run). An error raised after the
-- fiber was cancelled is reported too, unless it is the cancelled wait's own
-- `"cancelled"` error.
-- @tparam Listening listening
-- @tparam function handler
-- @tparam[opt] table opts `sw`, `on_error`
-- @return true once accepted, or `nil, err, code`
function M.accept_fork(listening, handler, opts)
  check_listening(listening, "accept_fork")
  if type(handler) ~= "function" then errors._typeerror(2, "coronet.net.accept_fork", "handler function", handler) end
  opts = check_opts(opts, "accept_fork", 3)
  local on_error = opts.on_error
  if on_error ~= nil and type(on_error) ~= "function" then
    errors._optionerror("coronet.net.accept_fork", "on_error", "a function", on_error)
  end
  -- On a switch, the flow is attached to it: the switch waits for its close
  -- to finish, and lets it go once the handler closed it.
  local flow, address, code = M.accept(listening, { sw = opts.sw })
  if not flow then return nil, address, code end
  local function body()
    local ok, err = xpcall(handler, with_traceback, flow, address)
    flow:close()
    -- a cancelled wait's error is the cancellation's echo, not the handler's
    -- own; any other error, even after a cancel, is reported
    if ok or (errors.is(err, "cancelled") and core.current():is_cancelled()) then return end
    err = with_address(err, address)
    if not on_error then error(err, 0) end
    on_error(err, address)
  end
  if opts.sw then
    opts.sw:fork(body)
  else
    core.spawn(body)
  end
  return true
end

-- run_server ------------------------------------------------------------

local function handler_ended(state)
  state.active = state.active - 1
  if state.active == 0 and state.idle then state.idle:fill(true) end
end

local function report(state, err, address)
  state.handler_errors = state.handler_errors + 1
  err = with_address(err, address)
  if state.on_error then
    local ok, err2 = pcall(state.on_error, err, address)
    if ok then return end
    err = err2
  end
  if not state.wake.filled then state.wake:fill("failed", err) end
end

-- The body of each connection's fiber while run_server serves.
function serve(state, sock, address)
  local fiber = core.current()
  state.active = state.active + 1
  state.fibers[fiber] = true
  local ok, err = xpcall(state.handler, with_traceback, sock, address)
  sock:close()
  state.fibers[fiber] = nil
  state.served = state.served + 1
  if not ok and not fiber:is_cancelled() then report(state, err, address) end
  handler_ended(state)
end

-- Cancelled, or a handler error nobody handles: every connection closes now.
local function close_at_once(state, listening)
  listening.core:abort_connections()
  for fiber in pairs(state.fibers) do fiber:cancel() end
end

local function stats_of(state, listening)
  return { accepted = listening.core:stats().accepted - state.accepted_before, connections = state.served,
           handler_errors = state.handler_errors, workers = 1 }
end

--- Loads a `"module.name:function"` handler; raises naming the module.
-- @tparam string spec
-- @treturn function
function M.load_handler(spec)
  if type(spec) ~= "string" then errors._typeerror(1, "net.load_handler", '"module.name:function" string', spec) end
  local module, name = tostring(spec):match("^([%w_%.%-]+):([%w_]+)$")
  if not module then
    error(("coronet.net.run_server: handler '%s' is not \"module.name:function\""):format(tostring(spec)), 0)
  end
  local ok, mod = pcall(require, module)
  if not ok then
    error(("coronet.net.run_server: handler module '%s' failed to load: %s"):format(module, tostring(mod)), 0)
  end
  local fn = type(mod) == "table" and mod[name]
  if type(fn) ~= "function" then
    error(("coronet.net.run_server: handler module '%s' has no function '%s'"):format(module, name), 0)
  end
  return fn
end

local function check_server_opts(opts)
  local max = opts.max_connections
  if max ~= nil and (math.type(max) ~= "integer" or max < 1) then
    error("coronet.net.run_server: option 'max_connections' must be an integer >= 1", 3)
  end
  local workers = opts.workers
  if workers ~= nil and (math.type(workers) ~= "integer" or workers < 1) then
    error("coronet.net.run_server: option 'workers' must be an integer >= 1", 3)
  end
  if opts.stop ~= nil and getmetatable(opts.stop) ~= deferred.Deferred then
    error("coronet.net.run_server: option 'stop' must be a deferred", 3)
  end
  if opts.on_error ~= nil and type(opts.on_error) ~= "function" then
    error("coronet.net.run_server: option 'on_error' must be a function", 3)
  end
end

-- Stops accepting; connections accepted in the same turn still reach this
-- server's handler (their fibers start before the one that waits here).
local function stop_accepting(state, listening)
  if not listening.closed then listening.core:pause(true) end
  core.sleep(0)
  listening.serving = nil
  listening.core:set_max_connections(nil)
  if state.stop_watch then state.stop_watch:cancel() end
  -- accept calls made meanwhile (their credit went with the pause) get it back
  if not listening.closed then listening.core:add_credit(#listening.waiting) end
end

-- Waits for the handlers to return; false if the wait was cancelled.
local function drain(state)
  if state.active == 0 then return true end
  state.idle = deferred.ivar()
  return state.idle.deferred:wait() ~= nil
end

-- Serves in this state until stop, a close, an unhandled handler error or a cancel.
local function serve_until_stopped(listening, handler, opts)
  local state = { handler = handler, on_error = opts.on_error, active = 0, served = 0, handler_errors = 0,
                  fibers = {}, wake = deferred.ivar(), accepted_before = listening.core:stats().accepted }
  if opts.stop then
    state.stop_watch = opts.stop:upon(function(...)
      if not state.wake.filled then state.wake:fill("stop", ...) end
    end)
  end
  listening.serving = state
  listening.core:set_max_connections(opts.max_connections)
  listening.core:pause(false)
  local what, value, code = state.wake.deferred:wait()
  if what == nil then -- this fiber was cancelled
    stop_accepting(state, listening)
    close_at_once(state, listening)
    return nil, value, code
  end
  stop_accepting(state, listening)
  if what == "failed" then
    close_at_once(state, listening)
    error(value, 0)
  end
  if not drain(state) then
    close_at_once(state, listening)
    return nil, errors.new("cancelled", "run_server was cancelled"), "cancelled"
  end
  if what == "closed" then return nil, closed_error("run_server"), "closed" end
  return value, stats_of(state, listening)
end

--- The handler behind a TLS handshake in the connection's own fiber, with
-- one context for the server (made now: a bad certificate or key fails
-- run_server before any client). A failed handshake closes that flow only.
-- Each worker state makes its own (net_workers).
-- @tparam function handler
-- @tparam table tls_opts the server's TLS options
-- @return the wrapped handler, or `nil, err, "tls_config"`
function M.with_tls_handshake(handler, tls_opts)
  local ctx, err, code = tls.server_context(tls_opts)
  if not ctx then return nil, err, code end
  return function(flow, address)
    if tls.accept(flow, ctx, tls_opts, address) then return handler(flow, address) end
  end
end

--- Serves every connection: `handler(flow, address)` runs in a fiber of its
-- own per client, on the foundation's accept loop (at most
-- `max_connections` at once, no over-accept, EMFILE back-off); the flow
-- closes when the handler returns. Options: `max_connections` (integer >= 1,
-- default 10000), `on_error(err, address)` for handler errors (the address
-- added as in `accept_fork`; without it the first error closes every
-- connection and is raised here), `stop` (a deferred: once determined, stop
-- accepting, let the connections finish, return its value), `workers` (see
-- coronet.net_workers; `handler` is then a `"module.name:function"` string),
-- `tls` (server options, see coronet.tls: each connection's handshake runs
-- in its fiber before `handler`; with `workers` each state makes its own
-- context from these options, so they cannot hold a `context` object).
-- Cancelling the fiber that runs it closes every connection at once and
-- returns `nil, err, "cancelled"`; the listening socket stays open (its
-- owner closes it). Closing the listening socket ends it with
-- `nil, err, "closed"` once the connections finished.
-- @tparam Listening listening
-- @param handler a function, or a `"module.name:function"` string
-- @tparam[opt] table opts
-- @return the stop value and stats `{accepted, connections, handler_errors, workers}`
function M.run_server(listening, handler, opts)
  check_listening(listening, "run_server")
  if type(handler) ~= "function" and type(handler) ~= "string" then
    errors._typeerror(2, "coronet.net.run_server", 'handler function or "module.name:function" string', handler)
  end
  opts = check_opts(opts, "run_server", 3)
  check_server_opts(opts)
  if listening.serving then error("coronet.net.run_server: this listening socket is already serving", 2) end
  if listening.closed then return nil, closed_error("run_server"), "closed" end
  check_can_wait()
  if (opts.workers or 1) > 1 then return require("coronet.net_workers").run(listening, handler, opts) end
  if type(handler) == "string" then handler = M.load_handler(handler) end
  if opts.tls ~= nil then
    local err, code
    handler, err, code = M.with_tls_handshake(handler, opts.tls)
    if not handler then return nil, err, code end
  end
  return serve_until_stopped(listening, handler, opts)
end

M.Listening = Listening
--- `run_server`'s loop in the current state, without its checks: serves
-- `listening` until a stop, a close, an unhandled handler error or a cancel
-- (`coronet.net_workers` runs it in each worker's state).
-- @function serve_until_stopped
-- @tparam Listening listening
-- @tparam function handler
-- @tparam table opts as `run_server`'s, already checked
M.serve_until_stopped = serve_until_stopped
return M
