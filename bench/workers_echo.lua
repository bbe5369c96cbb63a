-- workers_echo.lua PORT WORKERS: net.run_server with `workers` states and the
-- CPU-heavy bench/hash_handler.lua, until SIGTERM. Finds the module built in
-- the checkout by itself.
local root = (arg[0]:match("^(.*)/bench/[^/]*$") or ".")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/bench/?.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local coronet = require "coronet"
local net = require "coronet.net"

local port = tonumber(arg[1] or "7000")
local workers = tonumber(arg[2] or "1")

coronet.run(function()
  local listening = assert(net.listen(coronet.address("0.0.0.0", port), { reuse_port = true }))
  local stop = coronet.signal("SIGTERM")
  local _, stats = net.run_server(listening, "hash_handler:serve", {
    workers = workers, stop = stop, max_connections = 20000,
    on_error = function(err) io.stderr:write(tostring(err), "\n") end,
  })
  io.stderr:write(("workers_echo: %d workers, %d connections\n"):format(stats.workers, stats.connections))
  listening:close()
end)
