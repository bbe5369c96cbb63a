--- The parallel server behind `net.run_server(listening, "module.name:function",
-- {workers = n})` (Eio's `additional_domains`). Worker 1 is the calling
-- state; workers 2..n are OS threads, each with its own Lua state (standard
-- libraries, the caller's `package.path` and `package.cpath`), its own loop
-- and its own SO_REUSEPORT listener on the listening socket's address (the
-- kernel spreads the clients over them). Every worker requires the handler
-- module; all of them must load it before any listener accepts, or
-- `run_server` raises naming the module. The states talk only through the
-- core's channels (a mutex-protected queue woken by an async handle), in
-- strings: errors cross as plain tables. The calling state keeps control:
-- `stop` stops every worker gracefully; handler errors reach `on_error(err,
-- address)` with `err.worker` set; cancelling its fiber closes everything at
-- once.
--
-- A handler that computes without ever yielding cannot be interrupted (Lua
-- has no way to stop another state's code from outside): `stop` waits for
-- it like for any running handler, and a cancel, the end of `coronet.run`
-- or the close of the calling state (which asks still-running workers to
-- abort and joins them) blocks the calling state until it yields or
-- returns. In the calling state (worker 1) such a handler blocks the loop
-- itself. Keep long computations in steps that wait (`coronet.sleep(0)`).
-- @module coronet.net_workers
local coronet = require "coronet"
local core = require "coronet.core"
local deferred = require "coronet.deferred"
local errors = require "coronet.errors"
local net_server = require "coronet.net_server"

local M = {}

-- Messages: "<kind>\n<worker id>\n<payload>", the payload a Lua literal.

local function encode(v)
  local kind = type(v)
  if kind == "string" or kind == "number" then return ("%q"):format(v) end
  if kind == "boolean" or kind == "nil" then return tostring(v) end
  if kind ~= "table" then return ("%q"):format(tostring(v)) end
  local parts = {}
  for key, value in pairs(v) do parts[#parts + 1] = ("[%s]=%s"):format(encode(key), encode(value)) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function decode(payload)
  if payload == "" then return nil end
  return assert(load("return " .. payload, "=message", "t", {}))()
end

local function parse(msg)
  local kind, id, payload = msg:match("^(%a+)\n(%d+)\n(.*)$")
  return kind, tonumber(id), payload
end

--- A handler error as it crosses states: a plain table with `message`,
-- `worker`, `address` (an address value) and the string, number and boolean
-- fields of the value raised; `tostring` gives "worker <id>: <message>".
-- @type WorkerError
local WorkerError = {}
WorkerError.__index = WorkerError
function WorkerError:__tostring() return ("worker %d: %s"):format(self.worker, self.message) end

local function describe(err)
  local ok, text = pcall(tostring, err)
  return ok and type(text) == "string" and text or ("a %s value"):format(type(err))
end

local function plain_fields(err)
  local plain = {}
  if type(err) == "table" then
    pcall(function()
      for key, value in pairs(err) do
        local kind = type(value)
        if type(key) == "string" and (kind == "string" or kind == "number" or kind == "boolean") then plain[key] = value end
      end
    end)
  end
  plain.message = describe(err)
  return plain
end

local function worker_error(plain, worker, address)
  plain.worker = worker
  plain.address = address
  return setmetatable(plain, WorkerError)
end

-- Worker side -------------------------------------------------------------

local function serve_in_worker(id, config, inbox, send, handler)
  local listening, err = net_server.listen(coronet.address(config.ip, config.port),
    { reuse_port = true, backlog = config.backlog })
  if not listening then
    send("failed", { message = ("worker %d cannot listen: %s"):format(id, tostring(err)) })
    return
  end
  local stop = deferred.ivar()
  local server = coronet.spawn(net_server.serve_until_stopped, listening, handler, {
    max_connections = config.max_connections, stop = stop.deferred,
    on_error = function(e, address) send("error", { error = plain_fields(e), ip = address.ip, port = address.port }) end,
  })
  send("listening")
  local control = coronet.spawn(function()
    while true do
      local msg = inbox:receive()
      if msg == "stop" and not stop.filled then stop:fill(true) end
      if msg == "abort" or not msg then return server:cancel() end
    end
  end)
  local _, stats = server:join()
  control:cancel()
  listening:close()
  listening:close_finished()
  send("done", stats or {})
end

--- Running the workers.
-- @section workers

--- The body of a worker thread's state (called from csrc/binding/lworkers.c).
-- @tparam integer id
-- @tparam string config_text the encoded configuration
-- @param to_main the channel to the calling state
-- @param inbox the channel from it
function M.worker_main(id, config_text, to_main, inbox)
  local config = decode(config_text)
  local function send(kind, value) to_main:send(("%s\n%d\n%s"):format(kind, id, value and encode(value) or "")) end
  coronet.run(function()
    local ok, handler = pcall(net_server.load_handler, config.handler)
    if not ok then
      send("failed", { message = tostring(handler) })
      return
    end
    if config.tls then -- this state's own context, from the same options
      local err
      handler, err = net_server.with_tls_handshake(handler, config.tls)
      if not handler then
        send("failed", { message = tostring(err) })
        return
      end
    end
    send("loaded")
    if inbox:receive() ~= "go" then return end
    serve_in_worker(id, config, inbox, send, handler)
  end)
end

-- Main side ---------------------------------------------------------------

local function broadcast(pool, msg)
  for id, worker in pairs(pool.workers) do
    if not pool.exited[id] then worker.inbox:send(msg) end
  end
end

-- Waits for the next message from a worker; nil, err, code if cancelled.
local function next_message(pool)
  local msg, err, code = pool.inbox:receive()
  if not msg then return nil, err, code end
  local kind, id, payload = parse(msg)
  if kind == "exited" then
    pool.exited[id] = true
    pool.nexited = pool.nexited + 1
    pool.workers[id].thread:join() -- the thread has ended: returns at once
    if pool.nexited == pool.count and pool.all_exited then pool.all_exited:fill(true) end
  elseif kind == "done" then
    pool.stats[id] = decode(payload)
  end
  return kind, id, payload
end

-- Cancelled: no wait is possible any more, so the threads are told to abort
-- and joined, blocking (each ends as soon as its state has closed).
local function abort_blocking(pool)
  broadcast(pool, "abort")
  for id, worker in pairs(pool.workers) do
    if not pool.exited[id] then worker.thread:join() end
    pool.exited[id] = true
  end
end

-- Waits until every worker thread has ended; false if cancelled meanwhile.
local function wait_exited(pool)
  if pool.nexited == pool.count then return true end
  pool.all_exited = deferred.ivar()
  if pool.pump then return pool.all_exited.deferred:wait() ~= nil end
  while pool.nexited < pool.count do
    if not next_message(pool) then return false end
  end
  return true
end

-- Waits until each worker sent `kind` (or failed). true; false and the first
-- failure; or nil, err, code when cancelled.
local function wait_all(pool, kind)
  local count, failed, failure = 0, 0, nil
  while count + failed < pool.count do
    local got, id, payload = next_message(pool)
    if not got then return nil, id, payload end
    if got == kind then count = count + 1 end
    if got == "failed" or got == "crashed" then
      failed = failed + 1
      local text = got == "failed" and decode(payload).message or payload
      failure = failure or ("coronet.net.run_server: worker %d: %s"):format(id, text)
    end
  end
  if failure then return false, failure end
  return true
end

local function start_pool(n, config)
  local pool = { inbox = core.channel(), workers = {}, exited = {}, nexited = 0, count = n - 1, stats = {} }
  local text = encode(config)
  for id = 2, n do
    local inbox = core.channel()
    pool.workers[id] = { inbox = inbox, thread = core.worker_start(id, text, pool.inbox, inbox) }
  end
  return pool
end

-- Starts the workers and waits until each has loaded the handler and listens.
local function start_workers(n, config)
  local pool = start_pool(n, config)
  for _, phase in ipairs({ "loaded", "listening" }) do
    local ok, failure, code = wait_all(pool, phase)
    if ok == nil then
      abort_blocking(pool)
      return nil, failure, code
    end
    if not ok then
      broadcast(pool, "abort")
      if not wait_exited(pool) then abort_blocking(pool) end
      error(failure, 0)
    end
    if phase == "loaded" then broadcast(pool, "go") end
  end
  return pool
end

local function total_stats(pool, main_stats, n)
  local total = { accepted = 0, connections = 0, handler_errors = 0, workers = n }
  local function add(stats)
    for key in pairs(total) do
      if key ~= "workers" then total[key] = total[key] + (stats and stats[key] or 0) end
    end
  end
  add(main_stats)
  for _, stats in pairs(pool.stats) do add(stats) end
  return total
end

-- Handles worker messages while serving: errors go to on_error, crashes end the server.
local function pump(pool, handle_error, wake_with)
  while true do
    local kind, id, payload = next_message(pool)
    if not kind then return end
    if kind == "error" then
      local e = decode(payload)
      handle_error(worker_error(e.error, id, coronet.address(e.ip, e.port)))
    elseif kind == "crashed" then
      wake_with("failed", ("coronet.net.run_server: worker %d crashed: %s"):format(id, payload))
    end
  end
end

local function check_worker_args(listening, handler, opts)
  if type(handler) ~= "string" then
    error("coronet.net.run_server: with workers > 1 the handler must be a \"module.name:function\" string "
      .. "(functions cannot cross Lua states)", 4)
  end
  if type(opts.tls) == "table" and opts.tls.context ~= nil then
    error("coronet.net.run_server: a tls context cannot cross to worker states (pass the options)", 4)
  end
  local address = listening:getsockname()
  if address.family == "unix" then error("coronet.net.run_server: workers > 1 need a TCP listening socket", 4) end
  if not listening.reuse_port then
    error("coronet.net.run_server: workers > 1 need a listening socket made with reuse_port = true", 4)
  end
  return address
end

--- Runs the server on `opts.workers` states (see the module); called by `net.run_server`.
-- @return the stop value and the stats summed over the workers, or `nil, err, code`
function M.run(listening, handler, opts)
  local address = check_worker_args(listening, handler, opts)
  local handler_fn, err, code = net_server.load_handler(handler) -- raises naming the module
  if opts.tls then -- the calling state's context first: a bad certificate fails before any worker starts
    handler_fn, err, code = net_server.with_tls_handshake(handler_fn, opts.tls)
    if not handler_fn then return nil, err, code end
  end
  local n = opts.workers
  local pool
  pool, err, code = start_workers(n, { handler = handler, ip = address.ip, port = address.port, tls = opts.tls,
                                       backlog = listening.backlog, max_connections = opts.max_connections })
  if not pool then return nil, err, code end
  local wake = deferred.ivar()
  local function wake_with(...) if not wake.filled then wake:fill(...) end end
  local on_error = opts.on_error
  local function handle_error(e)
    if not on_error then return wake_with("failed", e) end
    local ok, err2 = pcall(on_error, e, e.address)
    if not ok then wake_with("failed", err2) end
  end
  local watch = opts.stop and opts.stop:upon(function(...) wake_with("stop", ...) end)
  local main_stop = deferred.ivar()
  local main = coronet.spawn(function()
    local value, stats, code = net_server.serve_until_stopped(listening, handler_fn, {
      max_connections = opts.max_connections, stop = main_stop.deferred,
      on_error = function(e, client) handle_error(worker_error(plain_fields(e), 1, client)) end,
    })
    if code == "closed" then wake_with("closed", stats) end -- the listening socket was closed
    return value, stats
  end)
  pool.pump = coronet.spawn(pump, pool, handle_error, wake_with)
  local what, value, wait_code = wake.deferred:wait()
  if watch then watch:cancel() end
  if what == nil then
    main:cancel()
    pool.pump:cancel()
    abort_blocking(pool)
    return nil, value, wait_code
  end
  if what == "failed" then
    main:cancel()
    broadcast(pool, "abort")
  else
    if not main_stop.filled then main_stop:fill(true) end
    broadcast(pool, "stop")
  end
  local _, main_stats = main:join()
  if not wait_exited(pool) then
    main:cancel()
    abort_blocking(pool)
    return nil, errors.new("cancelled", "run_server was cancelled"), "cancelled"
  end
  pool.pump:cancel()
  if what == "failed" then error(value, 0) end
  if what == "closed" then return nil, value, "closed" end
  return value, total_stats(pool, main_stats, n)
end

M.WorkerError = WorkerError
return M
