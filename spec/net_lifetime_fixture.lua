-- Handlers for spec/net_lifetime_spec.lua's worker cases, required by every worker state.
local M = {}

--- Reads lines until the client ends.
function M.hold(flow)
  local reader = flow:reader()
  while reader:read_line() do end
end

--- Calls coronet.run inside a handler (which must raise: the loop is running).
function M.runs()
  require("coronet").run(function() end)
end

--- Echoes one line.
function M.echo(flow)
  local line = flow:reader():read_line()
  if line then flow:write(line, "\n") end
end

return M
