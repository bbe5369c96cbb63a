-- echo_server.lua PORT: echoes every byte back until killed. The benchmark target.
-- Finds the module built in the checkout by itself.
local root = (arg[0]:match("^(.*)/examples/[^/]*$") or ".")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local coronet = require "coronet"
local tcp = coronet.tcp

local port = tonumber(arg[1] or "7000")

coronet.run(function()
  local server = assert(tcp.Server.create(tcp.Where_to_listen.on_port(port), function(_, reader, writer)
    while true do
      local data = reader:read()
      if not data or not writer:write(data) then return end
    end
  end, { on_handler_error = "ignore", max_connections = 20000 }))
  io.stderr:write(("echo server listening on port %d\n"):format(server:listening_on()))
  coronet.signal("SIGTERM", "SIGINT"):wait()
  server:close()
end)
