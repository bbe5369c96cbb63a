--- coronet.net: OCaml Eio's `Net` API, a view over the same core as
-- `coronet.tcp` (no second implementation of connect, accept, buffering,
-- timers, DNS or errors). Resources live in switches (`coronet.switch`):
-- every call that creates one takes `{sw = sw}`. The functions come from
-- the sub-modules below, one per area; see each for its documentation.
-- @module coronet.net
local M = {}

local function include(module)
  for name, value in pairs(module) do M[name] = value end
end

include(require "coronet.net_connect")
include(require "coronet.net_dns")
include(require "coronet.net_datagram")
include(require "coronet.net_server")

--- `net.getsockname(obj)`, `net.close(obj)`, `net.close_finished(obj[, timeout])`:
-- the methods as functions taking the object first, for every kind of
-- object coronet.net gives (flows, listening sockets, datagram sockets).
function M.getsockname(obj) return obj:getsockname() end
--- `obj:close()` as a function.
function M.close(obj) return obj:close() end
--- `obj:close_finished([timeout])` as a function.
function M.close_finished(obj, timeout) return obj:close_finished(timeout) end

return M
