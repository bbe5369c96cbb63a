--- coronet: TCP for Lua 5.4 on libuv, written as plain sequential code.
-- `coronet.run(fn)` runs `fn` in a fiber and drives the loop; every call
-- that waits yields its fiber and is resumed from a libuv callback.
-- @module coronet
local core = require "coronet.core"
local deferred = require "coronet.deferred"
local errors = require "coronet.errors"

local pack, unpack = table.pack, table.unpack

local M = {}

M.ivar = deferred.ivar
M.errors = errors

-- A fiber started by `coronet.spawn` (documented below, as the Fiber class).
local Fiber = {}
Fiber.__index = Fiber
local check_fiber = errors._self_checker(Fiber, "coronet fiber")

-- Errors keep their traceback (errors.with_traceback) and are otherwise
-- passed on untouched, whatever they are.
local function fiber_body(fiber, fn, ...)
  local result = pack(xpcall(fn, errors.with_traceback, ...))
  fiber.done:fill(result)
  if not result[1] and not fiber.core:is_cancelled() then
    error(result[2], 0) -- uncaught: ends the run, which re-raises it
  end
end

--- Starts `fn(...)` in a new fiber on the next loop turn; works inside and outside `run`.
-- @tparam function fn
-- @treturn Fiber
function M.spawn(fn, ...)
  if type(fn) ~= "function" then errors._typeerror(1, "coronet.spawn", "function", fn) end
  local fiber = setmetatable({ done = deferred.ivar() }, Fiber)
  fiber.core = core.spawn(fiber_body, fiber, fn, ...)
  return fiber
end

--- A fiber started by `coronet.spawn`. Each method is also a function of the
-- module taking the fiber first: `coronet.cancel(fiber)`,
-- `coronet.join(fiber[, timeout])`, `coronet.is_done(fiber)`.
-- @type Fiber

--- Cancels the fiber: its current wait and every later one return `nil, err, "cancelled"`.
function Fiber:cancel()
  check_fiber(self, "cancel")
  self.core:cancel()
end

--- True once the fiber has returned or raised.
function Fiber:is_done()
  check_fiber(self, "is_done")
  return self.done.filled
end

--- Waits for the fiber and returns its results, or `nil, err, code` if it raised or was cancelled.
-- @tparam[opt] number timeout seconds
function Fiber:join(timeout)
  check_fiber(self, "join")
  deferred.check_timeout(timeout, "join")
  local result, err, code = self.done.deferred:wait(timeout)
  if not result then return nil, err, code end
  if result[1] then return unpack(result, 2, result.n) end
  local failure = result[2]
  if self.core:is_cancelled() then
    return nil, errors.new("cancelled", "fiber was cancelled"), "cancelled"
  end
  return nil, failure, errors.is(failure) and failure.code or "error"
end

function Fiber:__tostring() return tostring(self.core) end

--- Time, signals and the loop.
-- @section loop

--- `fiber:cancel()` as a function.
-- @function cancel
-- @tparam Fiber fiber

--- `fiber:join([timeout])` as a function.
-- @function join
-- @tparam Fiber fiber
-- @tparam[opt] number timeout seconds

--- `fiber:is_done()` as a function.
-- @function is_done
-- @tparam Fiber fiber

M.cancel, M.join, M.is_done = Fiber.cancel, Fiber.join, Fiber.is_done

--- Suspends the running fiber for `seconds`, counted from the call. Returns
-- true, or `nil, err, "cancelled"`. Like every timeout, a duration of 2^31 s
-- or more (math.huge) means none: the fiber sleeps until cancelled. NaN and
-- negative durations raise.
-- @function sleep
M.sleep = core.sleep

--- Monotonic time in seconds, a float.
-- @function now
M.now = core.now

--- A deferred determined when the first of the named signals arrives, with
-- that signal's number and name: `coronet.signal("SIGTERM", "SIGINT"):wait()`
-- returns `15, "SIGTERM"` or `2, "SIGINT"`. From the next loop turn until
-- then, coronet handles those signals (in place of their default action, and
-- of `lua5.4`'s "interrupted!" for SIGINT); once it is determined, coronet
-- stops watching them all, so the same signal again gets its default action
-- (a second Ctrl-C ends the process). Raises on an unknown name, naming it.
-- @string name a signal's name, e.g. "SIGTERM"
-- @string[opt] ... more names
-- @treturn Deferred
function M.signal(...)
  local names = table.pack(...)
  if names.n == 0 then errors._argerror(1, "signal", "signal name expected, got no value") end
  for i = 1, names.n do
    local name = names[i]
    if type(name) ~= "string" or not core.signal_number(name) then
      errors._argerror(i, "signal", ("unknown signal name '%s'"):format(tostring(name)))
    end
  end
  local ivar = deferred.ivar()
  local watchers = {}
  for i = 1, names.n do
    watchers[i] = M.spawn(function()
      local signum = core.signal_wait(names[i])
      if not signum or ivar:is_full() then return end
      for j, watcher in ipairs(watchers) do
        if j ~= i then watcher:cancel() end
      end
      ivar:fill(signum, names[i])
    end)
  end
  return ivar.deferred
end

--- A deferred determined by the first of the given deferreds, with its
-- values (`coronet.deferred.any`, Async's `Deferred.any`).
-- @function any
-- @param ... deferreds
-- @treturn Deferred
M.any = deferred.any

--- Loop-wide counters and gauges, for an operator to scrape (see
-- examples/metrics_server.lua for the Prometheus text format). Returns a
-- fresh table each call. Counters are totals since the loop started, closed
-- connections and servers included; gauges are values now.
--
-- - `connections_open` (gauge, streams): connections, pipes and terminals
--   whose descriptor is not closed yet, connecting and closing ones included.
-- - `accepted` (counter, connections): taken by every server (as in
--   `server:stats().accepted`, drop mode included).
-- - `refused` (counter, events): a server at `max_connections` stopped
--   accepting while a client waited in its backlog. The client is left there
--   (never closed); clients arriving while the server stays full are not seen.
-- - `dropped` (counter, connections): accepted and closed at once in drop
--   mode (`set_drop_incoming_connections`).
-- - `accept_errors` (counter, errors): failed accepts (EMFILE...), as in `stats()`.
-- - `bytes_in`, `bytes_out` (counters, bytes): read from and handed to the
--   kernel by every stream, closed ones included.
-- - `fibers_alive` (gauge, fibers): spawned and not yet returned or raised.
-- - `timers_pending` (gauge, timers): started and not yet fired or stopped
--   (sleeps, timeouts, buffer age limits, close timeouts).
-- - `loop_lag` (gauge, seconds, a float): how late timers fired after their
--   due time, the largest in the current and previous second (0 when none
--   fired for 2 s); CPU work that keeps the loop from turning makes it grow.
-- - `dns_in_flight` (gauge, lookups): threadpool name lookups a fiber still
--   waits for (an abandoned one stops counting at once).
-- @treturn table `{connections_open=, accepted=, refused=, dropped=,
-- accept_errors=, bytes_in=, bytes_out=, fibers_alive=, timers_pending=,
-- loop_lag=, dns_in_flight=}`, integers but `loop_lag`
function M.metrics() return core.loop_stats() end

--- Sets the function that receives operator messages (accept errors, ignored handler errors); silent by default.
-- @tparam ?function logger called as logger(message)
M.set_logger = core.set_logger

local function raise_failure()
  local has, err = core.take_failure()
  if has then error(err, 0) end
end

--- Runs one pass of the loop, for hosts that drive it themselves. Waits for
-- events up to `timeout` seconds (nil: until one arrives, 0: not at all);
-- with nothing left to run it returns false at once.
-- Raises if the loop is already running (a fiber calling step), or a fiber raised.
-- @tparam[opt] number timeout
-- @treturn boolean whether anything is left to run
function M.step(timeout)
  if timeout ~= nil and not (type(timeout) == "number" and timeout >= 0) then
    errors._argerror(1, "coronet.step", "timeout must be seconds >= 0, or nil, got " .. errors._typename(timeout))
  end
  local alive = core.run_once(timeout)
  raise_failure()
  return alive
end

--- The loop's backend descriptor, for hosts that poll it.
M.backend_fd = core.backend_fd
--- Seconds until the loop has work due (nil: nothing scheduled).
M.backend_timeout = core.backend_timeout

-- Runs the loop until `done()` or an uncaught error; a loop with nothing
-- left that could wake the main fiber is a deadlock, reported as an error.
local function drive(done)
  while not done() and not core.has_failure() do
    if not core.run_once() and not done() and not core.has_failure() then
      error("coronet.run: deadlock: the main fiber waits but nothing can wake it", 0)
    end
  end
end

-- Cancels every fiber, closes every server and connection, and runs the loop until all have finished.
local function teardown()
  core.cancel_all()
  core.close_all(false)
  while (core.fiber_count() > 0 or core.live() > 0) and core.run_once() do
    core.cancel_all()
  end
end

local function spawn_and_drive(fn, ...)
  local main = M.spawn(fn, ...)
  drive(function() return main.done.filled end)
  return main
end

--- Runs `fn(...)` in a fiber and drives the loop until it returns; then
-- closes whatever is still open, cancels the other fibers and returns
-- `fn`'s results. An uncaught error in any fiber ends the run the same way
-- and is raised here with its traceback.
-- @tparam function fn
function M.run(fn, ...)
  -- Everything that can refuse the call does so before any state changes.
  if type(fn) ~= "function" then errors._typeerror(1, "coronet.run", "function", fn) end
  if core.is_running() then error("coronet.run: the loop is already running (call run only from outside it)", 2) end
  core.set_running(true)
  local ok, main = pcall(spawn_and_drive, fn, ...)
  local err = main
  teardown()
  core.set_running(false)
  raise_failure()
  if not ok then error(err, 0) end
  local result = main.done.value[1]
  if not result[1] then error(result[2], 0) end
  return unpack(result, 2, result.n)
end

--- An IPv4 or IPv6 address value; raises on a malformed literal.
-- @tparam string ip
-- @tparam integer port
M.address = core.address_ip
--- A unix socket address value; raises if the path does not fit sun_path.
-- @tparam string path
M.unix_address = core.address_unix

setmetatable(M, {
  __index = function(t, key) -- submodules load on first use
    if key == "tcp" or key == "tcp_server" or key == "where" or key == "deferred" or key == "reader"
      or key == "writer" or key == "socket" or key == "switch" or key == "net" or key == "connection"
      or key == "process" or key == "tls" then
      local mod = require("coronet." .. key)
      rawset(t, key, mod)
      return mod
    end
  end,
})

return M
