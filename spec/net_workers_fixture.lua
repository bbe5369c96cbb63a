-- Handlers for spec/net_workers_spec.lua, required by every worker state.
local M = {}

--- Echoes each line; a line "fail" raises a table error, "boom" a string.
function M.echo(flow)
  local r, w = flow:reader(), flow:writer()
  while true do
    local line = r:read_line()
    if not line then return end
    if line == "fail" then error({ code = "spec_failure", detail = 42 }) end
    if line == "boom" then error("boom") end
    w:write(line, "\n")
  end
end

--- Echoes one line with the flow's own methods (Eio's read and write), which
-- a worker state must have although it never loads coronet.tcp.
function M.flow_echo(flow)
  local line = flow:reader():read_line()
  if line then flow:write(line, "\n") end
end

return M
