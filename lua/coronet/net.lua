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

return M
