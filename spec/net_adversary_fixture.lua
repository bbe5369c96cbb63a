-- Handlers for spec/net_adversary_spec.lua's worker cases: `raise` fails at
-- call time (each worker state loads this module fine).
local M = {}

--- Raises a table error for every connection, after reading one line.
function M.raise(flow)
  flow:reader():read_line()
  error({ code = "adversary", detail = "raised at call time" })
end

return M
