--- Switches, after Eio's `Switch`: the scope that fibers and resources live
-- in. `coronet.switch(fn, ...)` runs `fn(sw, ...)` in the current fiber and
-- returns its results only once every fiber forked on `sw` has finished and
-- every resource attached to it is closed (its close finished).
--
-- If `fn` or a forked fiber raises (or `sw:fail(err)` is called), every
-- other fiber on the switch is cancelled, `fn`'s own included (its current
-- wait and the later ones return `nil, err, "cancelled"` until the switch
-- ends), the resources are closed, and the first error is raised again.
-- Later errors are appended to the first one's `suppressed` array when it is
-- a table (error values included), and given to the logger otherwise;
-- `"cancelled"` errors that follow the first are the cancellation's echo and
-- are dropped. The caller's fiber is not left cancelled once the switch has
-- returned, unless it was cancelled from outside: then the switch cancels
-- its fibers, waits for them and returns as usual.
--
-- The module is callable: `coronet.switch(fn, ...)` is `switch.run(fn, ...)`.
-- @module coronet.switch
local core = require "coronet.core"
local deferred = require "coronet.deferred"
local errors = require "coronet.errors"

local pack, unpack = table.pack, table.unpack

local M = {}

--- The switch passed to `fn`.
-- @type Switch
local Switch = {}
Switch.__index = Switch
M.Switch = Switch

--- What `on_release` and `attach` return: `handle:remove()` detaches the
-- release function or the resource (O(1)); idempotent.
-- @type Handle
local Handle = {}
Handle.__index = Handle

local function check_switch(sw, fn_name)
  if getmetatable(sw) ~= Switch then error(("coronet.switch: %s expects a switch"):format(fn_name), 3) end
end

local function check_open(sw, fn_name)
  check_switch(sw, fn_name)
  if sw.done then error(("coronet.switch: %s on a switch that has finished"):format(fn_name), 3) end
end

-- Appends err to the first error's `suppressed` array; a first error that
-- takes no field (a string, a table whose metamethods refuse) sends err to
-- the logger instead.
local function add_suppressed(sw, err)
  if errors.is(err, "cancelled") then return end
  local first = sw.error
  local ok = type(first) == "table" and pcall(function()
    local list = rawget(first, "suppressed")
    if list == nil then
      list = {}
      rawset(first, "suppressed", list)
    end
    list[#list + 1] = err
  end)
  if not ok then core.log("coronet.switch: a later error after the first: " .. tostring(err)) end
end

local function cancel_forks(sw)
  for fiber in pairs(sw.forks) do fiber:cancel() end
end

-- The first error wins: it cancels every fiber on the switch, fn's waits
-- included while the switch's scope is open.
local function record_failure(sw, err)
  if sw.failed then return add_suppressed(sw, err) end
  sw.failed, sw.error = true, err
  cancel_forks(sw)
  sw.fiber:cancel_scope(sw.depth)
end

local function fork_ended(sw, fiber)
  sw.forks[fiber] = nil
  sw.nforks = sw.nforks - 1
  if sw.nforks == 0 and sw.idle and not sw.idle:is_full() then sw.idle:fill(true) end
end

-- A forked fiber's body: its error fails the switch (never the run), and
-- its join returns `nil, err, code` then.
local function fork_body(sw, slot, fn, ...)
  local result = pack(xpcall(fn, errors.with_traceback, ...))
  fork_ended(sw, slot.fiber)
  if result[1] then return unpack(result, 2, result.n) end
  record_failure(sw, result[2])
  return nil, result[2], errors.is(result[2]) and result[2].code or "error"
end

-- Waits until no fiber is left on the switch. A wait that is cancelled (the
-- switch failed, or the caller's fiber was cancelled) cancels the forks and
-- waits on, protected. Returns whether it entered the protected section.
local function wait_forks(sw)
  local protected = false
  while sw.nforks > 0 do
    sw.idle = deferred.ivar()
    if not sw.idle.deferred:wait() and not protected then
      cancel_forks(sw)
      core.protect(true)
      protected = true
    end
  end
  return protected
end

-- Runs the release functions and starts closing the attached resources, the
-- latest first; then waits for those closes to finish.
local function release(sw)
  local closing = {}
  for i = sw.nreleases, 1, -1 do
    local entry = sw.releases[i]
    sw.releases[i] = false
    local ok, err = true, nil
    if type(entry) == "function" then
      ok, err = xpcall(entry, errors.with_traceback)
    elseif entry then
      ok, err = xpcall(entry.close, errors.with_traceback, entry)
      if ok and entry.close_finished then closing[#closing + 1] = entry end
    end
    if not ok then record_failure(sw, err) end
  end
  for _, resource in ipairs(closing) do
    local ok, err = xpcall(resource.close_finished, errors.with_traceback, resource)
    if not ok then record_failure(sw, err) end
  end
end

local function finish(sw)
  local protected = wait_forks(sw)
  sw.done = true
  if not protected then core.protect(true) end
  release(sw)
  core.protect(false)
end

--- Runs `fn(sw, ...)` in the current fiber and returns its results once
-- every fiber forked on `sw` has finished and every resource attached to it
-- is closed; re-raises the switch's first error. Must run in a coronet fiber.
-- @tparam function fn
-- @return `fn`'s results
function M.run(fn, ...)
  if type(fn) ~= "function" then error("coronet.switch expects a function", 2) end
  local fiber = core.current()
  if not fiber then error("coronet.switch must run in a coronet fiber: start one with coronet.spawn or coronet.run", 2) end
  local sw = setmetatable({ fiber = fiber, depth = core.scope_open(), forks = {}, nforks = 0,
                            releases = {}, nreleases = 0, done = false, failed = false }, Switch)
  local result = pack(xpcall(fn, errors.with_traceback, sw, ...))
  if not result[1] then record_failure(sw, result[2]) end
  finish(sw)
  core.scope_close(sw.depth)
  if sw.failed then error(sw.error, 0) end
  return unpack(result, 2, result.n)
end

--- Starts `fn(...)` in a new fiber attached to the switch (on the next loop
-- turn): the switch waits for it, and its error fails the switch. On a
-- failed switch the fiber starts cancelled. Raises once the switch has
-- finished.
-- @tparam function fn
-- @return the Fiber (`join` gives `fn`'s results, or `nil, err, code`)
function Switch:fork(fn, ...)
  check_open(self, "fork")
  if type(fn) ~= "function" then error("coronet.switch: fork expects a function", 2) end
  local slot = {}
  local fiber = require("coronet").spawn(fork_body, self, slot, fn, ...)
  slot.fiber = fiber
  self.forks[fiber] = true
  self.nforks = self.nforks + 1
  if self.failed then fiber:cancel() end
  return fiber
end

local function add_release(sw, entry)
  local n = sw.nreleases + 1
  sw.nreleases = n
  sw.releases[n] = entry
  return setmetatable({ switch = sw, index = n }, Handle)
end

--- Runs `fn()` when the switch ends, after its fibers have finished; release
-- functions run in reverse order of registration, protected from the
-- switch's cancellation. An error in one fails the switch (the others still
-- run). On a finished switch, `fn` runs at once and the call raises.
-- @tparam function fn
-- @treturn Handle
function Switch:on_release(fn)
  check_switch(self, "on_release")
  if type(fn) ~= "function" then error("coronet.switch: on_release expects a function", 2) end
  if self.done then
    fn()
    error("coronet.switch: on_release on a switch that has finished (the function ran at once)", 2)
  end
  return add_release(self, fn)
end

--- Attaches a resource (anything with `close()`, and optionally
-- `close_finished()`, which waits): the switch closes it at its end, in the
-- release order, and waits for its close to finish. `handle:remove()`
-- detaches it, e.g. once its owner closed it. On a finished switch the
-- resource is closed at once and the call raises.
-- @param resource
-- @treturn Handle
function Switch:attach(resource)
  check_switch(self, "attach")
  local ok = pcall(function() assert(type(resource.close) == "function") end)
  if not ok then error("coronet.switch: attach expects a resource with a close method", 2) end
  if self.done then
    resource:close()
    error("coronet.switch: attach on a switch that has finished (the resource was closed)", 2)
  end
  return add_release(self, resource)
end

--- Detaches what `handle` refers to (as `handle:remove()`).
-- @tparam Handle handle
function Switch:remove(handle)
  check_switch(self, "remove")
  if getmetatable(handle) ~= Handle or handle.switch ~= self then
    error("coronet.switch: remove expects a handle of this switch", 2)
  end
  handle:remove()
end

--- Fails the switch with `err` as if a fiber on it had raised it: the
-- others are cancelled and the switch raises `err` at its end (a later
-- `fail` adds to `suppressed`). Raises once the switch has finished.
-- @param err
function Switch:fail(err)
  check_open(self, "fail")
  record_failure(self, err)
end

--- True once the switch has finished (its fibers are done; its releases
-- have started). Nothing can be forked or attached then.
-- @treturn boolean
function Switch:is_done()
  check_switch(self, "is_done")
  return self.done
end

--- Detaches the release function or resource; idempotent.
function Handle:remove()
  local sw = self.switch
  if not sw.done and sw.releases[self.index] then sw.releases[self.index] = false end
end

-- The methods as functions taking the switch first.
M.fork, M.on_release, M.attach, M.remove, M.fail, M.is_done =
  Switch.fork, Switch.on_release, Switch.attach, Switch.remove, Switch.fail, Switch.is_done

return setmetatable(M, { __call = function(_, fn, ...) return M.run(fn, ...) end })
