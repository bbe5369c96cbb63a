--- Ivars and deferreds, after OCaml Async: an ivar is filled once; its
-- deferred can be waited on by any number of fibers. Waiters and `upon`
-- callbacks run in order on the next loop turn, never inside `fill`.
-- @module coronet.deferred
local core = require "coronet.core"

local pack, unpack = table.pack, table.unpack

local Ivar = {}
Ivar.__index = Ivar

local Deferred = {}
Deferred.__index = Deferred

local M = {}

--- A new empty ivar.
-- @treturn Ivar
function M.ivar()
  local ivar = setmetatable({ filled = false, pending = {} }, Ivar)
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

--- Fills the ivar with values; filling a full ivar raises.
function Ivar:fill(...)
  if self.filled then error("coronet: this ivar is already filled", 2) end
  self.filled = true
  self.value = pack(...)
  local pending = self.pending
  self.pending = nil
  for i = 1, #pending do
    local entry = pending[i]
    if entry.fiber then
      core.unpark(entry.fiber, entry.ticket)
    else
      core.spawn(entry.callback, unpack(self.value, 1, self.value.n))
    end
  end
end

--- True once filled.
function Ivar:is_full() return self.filled end

--- The deferred of this ivar.
-- @treturn Deferred
function Ivar:read() return self.deferred end

--- Waits until determined and returns its values; `nil, err, "timeout"|"cancelled"` otherwise.
-- @tparam[opt] number timeout seconds
function Deferred:wait(timeout)
  local ivar = self.ivar
  if ivar.filled then return unpack(ivar.value, 1, ivar.value.n) end
  local fiber = core.current()
  if not fiber then return core.park() end -- raises the "must run in a fiber" error
  local entry = { fiber = fiber, ticket = fiber:ticket() }
  local pending = ivar.pending
  pending[#pending + 1] = entry
  local ok, err, code = core.park(timeout)
  if not ok then
    for i = #pending, 1, -1 do
      if pending[i] == entry then table.remove(pending, i) break end
    end
    return nil, err, code
  end
  return unpack(ivar.value, 1, ivar.value.n)
end

--- True once determined.
function Deferred:is_determined() return self.ivar.filled end

--- The values if determined, else nothing.
function Deferred:peek()
  local ivar = self.ivar
  if ivar.filled then return unpack(ivar.value, 1, ivar.value.n) end
end

--- Calls `f(values...)` in a new fiber once determined (next loop turn at the earliest).
-- @tparam function f
function Deferred:upon(f)
  assert(type(f) == "function", "upon expects a function")
  local ivar = self.ivar
  if ivar.filled then
    core.spawn(f, unpack(ivar.value, 1, ivar.value.n))
  else
    ivar.pending[#ivar.pending + 1] = { callback = f }
  end
end

M.Ivar, M.Deferred = Ivar, Deferred
-- The operations as functions taking the ivar or deferred first.
M.fill, M.read, M.is_full = Ivar.fill, Ivar.read, Ivar.is_full
M.wait, M.is_determined, M.peek, M.upon = Deferred.wait, Deferred.is_determined, Deferred.peek, Deferred.upon
return M
