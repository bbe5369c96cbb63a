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
-- its fibers, waits for them and returns as usual. A switch's end (waiting
-- for its fibers, its releases) is protected from cancels from outside and
-- from the switches around it, but a switch run inside it (in a release
-- function) is still cancelled by its own failure. At most 64 switches nest
-- in one fiber (the 65th raises).
--
-- The module is callable: `coronet.switch(fn, ...)` is `switch.run(fn, ...)`.
-- @module coronet.switch
local core = require "coronet.core"
local deferred = require "coronet.deferred"
local errors = require "coronet.errors"

local pack, unpack = table.pack, table.unpack

-- The release list is swept when it reaches this length (then twice what
-- the last sweep kept).
local SWEEP_MIN = 64

local M = {}

-- The switch passed to `fn` (documented below, as the Switch class).
local Switch = {}
Switch.__index = Switch
M.Switch = Switch

-- What `on_release` and `attach` return (documented below, as the Handle class).
local Handle = {}
Handle.__index = Handle

local function check_switch(sw, fn_name)
  if getmetatable(sw) ~= Switch then errors._typeerror(1, fn_name, "coronet switch", sw, 2, true) end
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
-- waits on, protected. Returns the protected section's token if it entered
-- one.
local function wait_forks(sw)
  local protected
  while sw.nforks > 0 do
    sw.idle = deferred.ivar()
    if not sw.idle.deferred:wait() and not protected then
      cancel_forks(sw)
      protected = core.protect(true)
    end
  end
  return protected
end

-- True for an attached resource whose owner has started closing it.
local function closed_by_owner(value)
  if type(value) == "function" or type(value.is_closed) ~= "function" then return false end
  local ok, closed = pcall(value.is_closed, value)
  return ok and closed == true
end

-- Waits for the close of each resource to finish, protected.
local function wait_closes(sw, resources)
  for _, resource in ipairs(resources) do
    local ok, err = xpcall(resource.close_finished, errors.with_traceback, resource)
    if not ok then record_failure(sw, err) end
  end
end

-- Runs the release functions and starts closing the attached resources, the
-- latest first; then waits for those closes to finish, and for the closes
-- their owners started (those still alive: see `sweep`).
local function release(sw)
  local closing = {}
  for i = sw.nreleases, 1, -1 do
    local entry = sw.releases[i]
    sw.releases[i] = false
    local value = entry and entry.value
    local ok, err = true, nil
    if type(value) == "function" then
      ok, err = xpcall(value, errors.with_traceback)
    elseif value then
      if not closed_by_owner(value) then ok, err = xpcall(value.close, errors.with_traceback, value) end
      if ok and value.close_finished then closing[#closing + 1] = value end
    end
    if not ok then record_failure(sw, err) end
  end
  wait_closes(sw, closing)
  local closed_by_owner = {}
  for resource in pairs(sw.closed_by_owner) do closed_by_owner[#closed_by_owner + 1] = resource end
  wait_closes(sw, closed_by_owner)
end

local function finish(sw)
  local protected = wait_forks(sw)
  sw.done = true
  if not protected then protected = core.protect(true) end
  release(sw)
  core.protect(false, protected)
end

--- Runs `fn(sw, ...)` in the current fiber and returns its results once
-- every fiber forked on `sw` has finished and every resource attached to it
-- is closed; re-raises the switch's first error. Must run in a coronet fiber.
-- @tparam function fn
-- @return `fn`'s results
function M.run(fn, ...)
  if type(fn) ~= "function" then errors._typeerror(1, "coronet.switch", "function", fn) end
  local fiber = core.current()
  if not fiber then error("coronet.switch must run in a coronet fiber: start one with coronet.spawn or coronet.run", 2) end
  local sw = setmetatable({ fiber = fiber, depth = core.scope_open(), forks = {}, nforks = 0,
                            releases = {}, nreleases = 0, sweep_at = SWEEP_MIN,
                            closed_by_owner = setmetatable({}, { __mode = "k" }), done = false, failed = false }, Switch)
  local result = pack(xpcall(fn, errors.with_traceback, sw, ...))
  if not result[1] then record_failure(sw, result[2]) end
  finish(sw)
  core.scope_close(sw.depth)
  if sw.failed then error(sw.error, 0) end
  return unpack(result, 2, result.n)
end

--- The switch passed to `fn`. Each method is also a function of the module
-- taking the switch first (`switch.fork(sw, fn)`).
-- @type Switch

--- Starts `fn(...)` in a new fiber attached to the switch (on the next loop
-- turn): the switch waits for it, and its error fails the switch. On a
-- failed switch the fiber starts cancelled. Raises once the switch has
-- finished.
-- @tparam function fn
-- @return the Fiber (`join` gives `fn`'s results, or `nil, err, code`)
function Switch:fork(fn, ...)
  check_open(self, "fork")
  if type(fn) ~= "function" then errors._typeerror(2, "fork", "function", fn, 1, true) end
  local slot = {}
  local fiber = require("coronet").spawn(fork_body, self, slot, fn, ...)
  slot.fiber = fiber
  self.forks[fiber] = true
  self.nforks = self.nforks + 1
  if self.failed then fiber:cancel() end
  return fiber
end

-- Drops the entries removed or closed by their owner from the release list,
-- keeping the order of the others and their handles' index. A closed
-- resource moves to a weak set: the switch no longer keeps it alive (a
-- switch serving for days attaches one flow per client), but waits at its
-- end for the close of those still alive to finish. Called when the list
-- has doubled since the last sweep: O(1) per attach, amortised.
local function sweep(sw)
  local kept = 0
  for i = 1, sw.nreleases do
    local entry = sw.releases[i]
    sw.releases[i] = nil
    if entry and closed_by_owner(entry.value) then
      if entry.value.close_finished then sw.closed_by_owner[entry.value] = true end
      entry.index = nil
    elseif entry then
      kept = kept + 1
      sw.releases[kept] = entry
      entry.index = kept
    end
  end
  sw.nreleases = kept
  sw.sweep_at = math.max(SWEEP_MIN, 2 * kept)
end

local function add_release(sw, value)
  if sw.nreleases >= sw.sweep_at then sweep(sw) end
  local n = sw.nreleases + 1
  local handle = setmetatable({ switch = sw, index = n, value = value }, Handle)
  sw.nreleases = n
  sw.releases[n] = handle
  return handle
end

--- Runs `fn()` when the switch ends, after its fibers have finished; release
-- functions run in reverse order of registration, protected from the
-- switch's cancellation. An error in one fails the switch (the others still
-- run). On a finished switch, `fn` runs at once and the call raises.
-- @tparam function fn
-- @treturn Handle
function Switch:on_release(fn)
  check_switch(self, "on_release")
  if type(fn) ~= "function" then errors._typeerror(2, "on_release", "function", fn, 1, true) end
  if self.done then
    fn()
    error("coronet.switch: on_release on a switch that has finished (the function ran at once)", 2)
  end
  return add_release(self, fn)
end

--- Attaches a resource (anything with `close()`, and optionally
-- `close_finished()`, which waits): the switch closes it at its end, in the
-- release order, and waits for its close to finish. `handle:remove()`
-- detaches it. A resource its owner closed first (its `is_closed()` is
-- true) is not closed again, and the switch stops keeping it alive (it lets
-- such resources go in sweeps, so a long-lived switch that attaches one flow
-- per client stays bounded); if it is still alive at the end, the switch
-- waits for its close to finish. On a finished switch the
-- resource is closed at once and the call raises.
-- @param resource
-- @treturn Handle
function Switch:attach(resource)
  check_switch(self, "attach")
  local ok = pcall(function() assert(type(resource.close) == "function") end)
  if not ok then errors._typeerror(2, "attach", "resource with a close method", resource, 1, true) end
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
    errors._typeerror(2, "remove", "handle of this switch", handle, 1, true)
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

--- What `on_release` and `attach` return: `handle:remove()` detaches the
-- release function or the resource (O(1)); idempotent.
-- @type Handle

--- Detaches the release function or resource; idempotent.
function Handle:remove()
  if getmetatable(self) ~= Handle then errors._typeerror(1, "remove", "coronet switch handle", self, 1, true) end
  local sw = self.switch
  if sw.done then return end
  if self.index then sw.releases[self.index] = false end
  if self.value ~= nil and type(self.value) ~= "function" then sw.closed_by_owner[self.value] = nil end
  self.index, self.value = nil, nil
end

-- The methods as functions taking the switch first.
M.fork, M.on_release, M.attach, M.remove, M.fail, M.is_done =
  Switch.fork, Switch.on_release, Switch.attach, Switch.remove, Switch.fail, Switch.is_done

return setmetatable(M, { __call = function(_, fn, ...) return M.run(fn, ...) end })
