--- coronet.net: the Eio `Net` API over the foundation's core. This module
-- merges its sub-modules' functions into one table.
-- @module coronet.net
local M = {}

local function merge(name)
  for key, value in pairs(require(name)) do M[key] = value end
end

merge "coronet.net_server"

return M
