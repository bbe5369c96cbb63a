--- Running the loop from outside it, for the calls of coronet.connection
-- that a program without fibers makes: the blocking interface and `wait`.
-- Internal to coronet.connection.
-- @module coronet.connection.drive
local core = require "coronet.core"

local M = {}

local function raise_failure()
  local has, err = core.take_failure()
  if has then error(err, 0) end
end

--- True when a call may run the loop itself: not inside `coronet.run`, a
-- fiber or a host's `coronet.step` (libuv's loop is not re-entrant).
function M.may_run() return not core.is_running() and not core.current() end

--- Raises, naming `fn` (the public name after "coronet.connection."), when
-- a call that waits can neither run the loop nor yield: the loop is running
-- and the caller is no fiber (a coroutine of its own inside a fiber, a
-- make_data). Call it from the public function itself.
function M.check_can_wait(fn)
  if core.current() or M.may_run() then return end
  error(("coronet.connection.%s: the loop is running and this coroutine is no coronet fiber (libuv's loop is"
    .. " not re-entrant): call it from a fiber (coronet.spawn) or from outside the loop"):format(fn), 3)
end

--- One non-blocking pass of the loop, if it may run.
function M.pass()
  if not M.may_run() then return end
  core.run_once(0)
  raise_failure()
end

--- Runs the loop until `done()`, or until `timeout` seconds have passed (a
-- sleeping fiber keeps the loop alive until then). A loop with nothing
-- left to run ends it too: nothing could make `done()` true any more. An
-- uncaught error of a fiber is raised here, as `coronet.step` does.
-- Meanwhile the loop counts as running, as inside `coronet.run`: a fiber's
-- death ends the pass (so does `core.stop_pass`, for a condition set by a
-- fiber that lives on), and nothing run from the loop may drive it again.
function M.until_done(done, timeout)
  if not M.may_run() then error("coronet.connection: the loop is running already (libuv's loop is not re-entrant)", 3) end
  local timed_out = false
  local sleeper = timeout and core.spawn(function()
    if core.sleep(timeout) then timed_out = true end
  end)
  core.set_running(true)
  local ok, err = pcall(function()
    while not done() and not timed_out do
      local alive = core.run_once()
      raise_failure()
      if not alive then break end
    end
  end)
  core.set_running(false)
  if sleeper then sleeper:cancel() end
  if not ok then error(err, 0) end
end

--- Runs `body(...)` in a fiber and the loop until it returns; its results.
-- `fn` names the public function for the error raised inside a running loop.
function M.call(fn, body, ...)
  if not M.may_run() then
    error(("coronet.connection.%s: called inside a running loop (inside coronet.run, a fiber or a host's"
      .. " coronet.step, use coronet.tcp or coronet.connection's non-blocking calls)"):format(fn), 3)
  end
  local result
  core.spawn(function(...) result = table.pack(body(...)) end, ...)
  M.until_done(function() return result ~= nil end)
  if not result then error(("coronet.connection.%s: the loop stopped before the call ended"):format(fn), 3) end
  return table.unpack(result, 1, result.n)
end

return M
