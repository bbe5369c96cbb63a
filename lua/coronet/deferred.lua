--- Ivars and deferreds, after OCaml Async: an ivar is filled once; its
-- deferred can be waited on by any number of fibers. Waiters and `upon`
-- callbacks run in order on the next loop turn, never inside `fill`.
-- @module coronet.deferred
local core = require "coronet.core"
local errors = require "coronet.errors"

local pack, unpack = table.pack, table.unpack

local Ivar = {}
Ivar.__index = Ivar

local Deferred = {}
Deferred.__index = Deferred

-- What `upon` returns: `handle:cancel()` removes the callback (also as a
-- `<close>` variable).
local Upon = {}
Upon.__index = Upon

local M = {}

local check_ivar = errors._self_checker(Ivar, "coronet ivar")
local check_deferred = errors._self_checker(Deferred, "coronet deferred")
local check_upon = errors._self_checker(Upon, "coronet upon handle")

-- The pending waiters and callbacks form a doubly linked ring whose sentinel
-- is ivar.pending: FIFO for fill, and O(1) removal for a wait that times out
-- or an upon that is cancelled, however many share the ivar.
local function new_ring()
  local ring = {}
  ring.next, ring.prev = ring, ring
  return ring
end

local function append(ivar, entry)
  local ring = ivar.pending
  entry.prev, entry.next = ring.prev, ring
  ring.prev.next = entry
  ring.prev = entry
  ivar.npending = ivar.npending + 1
end

-- Removes entry if it is still pending (idempotent).
local function remove(ivar, entry)
  if not entry.next or ivar.filled then return end
  entry.prev.next, entry.next.prev = entry.next, entry.prev
  entry.next, entry.prev = nil, nil
  ivar.npending = ivar.npending - 1
end

--- A new empty ivar.
-- @treturn Ivar
function M.ivar()
  local ivar = setmetatable({ filled = false, pending = new_ring(), npending = 0 }, Ivar)
  ivar.deferred = setmetatable({ ivar = ivar }, Deferred)
  return ivar
end

--- A deferred that is already determined with the given values.
-- @return Deferred
function M.of(...)
  local ivar = M.ivar()
  ivar:fill(...)
  return ivar.deferred
end

--- How many waiters and `upon` callbacks wait for the ivar (or deferred).
-- @param ivar an Ivar or a Deferred
-- @treturn integer
function M.pending_count(ivar)
  local mt = getmetatable(ivar)
  if mt ~= Ivar and mt ~= Deferred then errors._typeerror(1, "pending_count", "coronet ivar or deferred", ivar) end
  return (ivar.ivar or ivar).npending
end

-- An upon callback runs as coronet.spawn runs a fiber's function: its error
-- keeps its traceback and ends the run, unless its fiber was cancelled (an
-- unwinding at teardown is not a failure).
local function run_callback(f, ...)
  local ok, err = xpcall(f, errors.with_traceback, ...)
  if not ok and not core.current():is_cancelled() then error(err, 0) end
end

--- An ivar: a cell filled once. Each method is also a function of the
-- module taking the ivar first (`deferred.fill(ivar, ...)`).
-- @type Ivar

--- Fills the ivar with values; filling a full ivar raises.
function Ivar:fill(...)
  check_ivar(self, "fill")
  if self.filled then error("coronet: this ivar is already filled", 2) end
  self.filled = true
  self.value = pack(...)
  local ring = self.pending
  self.pending, self.npending = nil, 0
  local entry = ring.next
  while entry ~= ring do
    local next_entry = entry.next
    entry.next, entry.prev = nil, nil
    if entry.fiber then
      core.unpark(entry.fiber, entry.ticket)
    elseif entry.relay then
      entry.relay(self.value)
    else
      core.spawn(run_callback, entry.callback, unpack(self.value, 1, self.value.n))
    end
    entry = next_entry
  end
end

--- True once filled.
function Ivar:is_full()
  check_ivar(self, "is_full")
  return self.filled
end

--- The deferred of this ivar.
-- @treturn Deferred
function Ivar:read()
  check_ivar(self, "read")
  return self.deferred
end

--- Checking arguments.
-- @section checks

--- Raises "bad argument #n to 'fn' (timeout must be seconds >= 0 ...)"
-- unless `timeout` is seconds >= 0, nil or false. `level` counts from the
-- caller of check_timeout to the function whose argument it is (default 1);
-- `n` is its position counting self (default 2: a method's first argument).
function M.check_timeout(timeout, fn, level, n)
  if timeout ~= nil and timeout ~= false and not (type(timeout) == "number" and timeout >= 0) then
    errors._argerror(n or 2, fn, ("timeout must be seconds >= 0, or nil or false for none, got %s"):format(
      type(timeout) == "number" and tostring(timeout) or errors._typename(timeout)), (level or 1) + 1, n == nil)
  end
end

--- The deferred of an ivar: what fibers wait on. Each method is also a
-- function of the module taking the deferred first (`deferred.wait(d)`).
-- @type Deferred

--- Waits until determined and returns its values; `nil, err, "timeout"|"cancelled"` otherwise.
-- @tparam[opt] number timeout seconds (nil, false or math.huge: none)
function Deferred:wait(timeout)
  check_deferred(self, "wait")
  M.check_timeout(timeout, "wait")
  local ivar = self.ivar
  if ivar.filled then return unpack(ivar.value, 1, ivar.value.n) end
  local fiber = core.current()
  -- raises the "must run in a fiber" or "cannot yield here" error before an
  -- entry is attached (a stale entry would wake this fiber's next wait)
  if not fiber or not coroutine.isyieldable() then return core.park() end
  local entry = { fiber = fiber, ticket = fiber:ticket() }
  append(ivar, entry)
  local ok, err, code = core.park(timeout)
  if not ok then
    remove(ivar, entry)
    return nil, err, code
  end
  return unpack(ivar.value, 1, ivar.value.n)
end

--- True once determined.
function Deferred:is_determined()
  check_deferred(self, "is_determined")
  return self.ivar.filled
end

--- The values if determined, else nothing.
function Deferred:peek()
  check_deferred(self, "peek")
  local ivar = self.ivar
  if ivar.filled then return unpack(ivar.value, 1, ivar.value.n) end
end

--- Calls `f(values...)` in a new fiber once determined (next loop turn at
-- the earliest). The fiber runs as `coronet.spawn`'s do: an error ends the
-- run with its traceback.
-- @tparam function f
-- @treturn Upon a handle: `handle:cancel()` removes the callback if it has not been started yet
function Deferred:upon(f)
  check_deferred(self, "upon")
  if type(f) ~= "function" then errors._typeerror(2, "upon", "function", f, 1, true) end
  local ivar = self.ivar
  local handle = setmetatable({ ivar = ivar, callback = f }, Upon)
  if ivar.filled then
    core.spawn(run_callback, f, unpack(ivar.value, 1, ivar.value.n))
  else
    append(ivar, handle)
  end
  return handle
end

--- What `upon` returns: `handle:cancel()` removes the callback (also as a
-- `<close>` variable).
-- @type Upon

--- Removes the callback if the deferred is not determined yet; idempotent.
function Upon:cancel()
  check_upon(self, "cancel")
  remove(self.ivar, self)
end
Upon.__close = Upon.cancel

--- Choosing.
-- @section choosing

local function describe(value)
  local mt = getmetatable(value)
  if mt == Ivar then return "ivar" end
  return type(value)
end

--- A deferred determined by the first of `...` to be determined, with its
-- values (Async's `Deferred.any`): `coronet.any(coronet.signal("SIGTERM"),
-- server:close_finished())`. If one is determined already, the first such in
-- argument order wins. The others are left as they are and no longer
-- referenced by it. Raises unless every argument is a deferred (pass
-- `ivar:read()` for an ivar) and there is at least one.
-- @param ... deferreds
-- @treturn Deferred
function M.any(...)
  local sources = pack(...)
  if sources.n == 0 then errors._argerror(1, "any", "deferred expected, got no value") end
  for i = 1, sources.n do
    if getmetatable(sources[i]) ~= Deferred then
      errors._argerror(i, "any", ("deferred expected, got %s"):format(describe(sources[i])))
    end
  end
  for i = 1, sources.n do
    local ivar = sources[i].ivar
    if ivar.filled then return M.of(unpack(ivar.value, 1, ivar.value.n)) end
  end
  local first = M.ivar()
  local relays = {}
  -- called inside the winner's fill: detach from the others, then fill
  local function relay(value)
    if first.filled then return end              -- the same deferred given twice
    for i = 1, sources.n do remove(sources[i].ivar, relays[i]) end
    first:fill(unpack(value, 1, value.n))
  end
  for i = 1, sources.n do
    relays[i] = { relay = relay }
    append(sources[i].ivar, relays[i])
  end
  return first.deferred
end

M.Ivar, M.Deferred, M.Upon = Ivar, Deferred, Upon
-- The operations as functions taking the ivar or deferred first.
M.fill, M.read, M.is_full = Ivar.fill, Ivar.read, Ivar.is_full
M.wait, M.is_determined, M.peek, M.upon = Deferred.wait, Deferred.is_determined, Deferred.peek, Deferred.upon
return M
