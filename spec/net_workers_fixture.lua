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

return M
