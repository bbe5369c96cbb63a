--- coronet.net: OCaml Eio's `Net` API, a view over the same core as
-- `coronet.tcp` (no second implementation of connect, accept, buffering,
-- timers, DNS or errors). Resources live in switches (`coronet.switch`):
-- every call that creates one takes `{sw = sw}`. The functions come from
-- the sub-modules below, one per area; see each for its documentation.
-- @module coronet.net
local deferred = require "coronet.deferred"
local errors = require "coronet.errors"

local M = {}

local function include(module)
  for name, value in pairs(module) do M[name] = value end
end

include(require "coronet.net_connect")
include(require "coronet.net_dns")
include(require "coronet.net_datagram")
include(require "coronet.net_server")

-- Raises naming fn unless obj has the method `name` (a flow, a listening or datagram socket).
local function check_has(obj, name, fn)
  local ok, method = pcall(function() return obj[name] end)
  if not ok or type(method) ~= "function" then
    errors._typeerror(1, fn, "socket, listening socket or datagram socket", obj, 2)
  end
end

--- `net.getsockname(obj)`, `net.close(obj)`, `net.close_finished(obj[, timeout])`:
-- the methods as functions taking the object first, for every kind of
-- object coronet.net gives (flows, listening sockets, datagram sockets).
function M.getsockname(obj)
  check_has(obj, "getsockname", "net.getsockname")
  return obj:getsockname()
end
--- `obj:close()` as a function.
function M.close(obj)
  check_has(obj, "close", "net.close")
  return obj:close()
end
--- `obj:close_finished([timeout])` as a function.
function M.close_finished(obj, timeout)
  check_has(obj, "close_finished", "net.close_finished")
  deferred.check_timeout(timeout, "net.close_finished", 1, 2)
  return obj:close_finished(timeout)
end

return M
