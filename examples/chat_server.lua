-- chat_server.lua [PORT]: every line a client sends goes to every other
-- client; "/quit" leaves. A client too slow to keep up is dropped rather
-- than allowed to hold everyone else back. Serves until SIGTERM or SIGINT.
local root = (arg[0]:match("^(.*)/examples/[^/]*$") or ".")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local coronet = require "coronet"
local tcp = coronet.tcp

local port = tonumber(arg[1] or "7001")
local members = {} -- writer -> name

-- Never waits: a member whose unsent backlog reached its writer's mark is dropped.
local function broadcast(from, text)
  for writer in pairs(members) do
    if writer ~= from then
      if writer:pending() < writer:hwm() then
        writer:write(text)
      else
        writer:socket():abort()
      end
    end
  end
end

local function member(address, reader, writer)
  local name = tostring(address)
  writer:write("welcome, ", name, "\n")
  broadcast(writer, name .. " joined\n")
  members[writer] = name
  while true do
    local line = reader:read_line()
    if not line or line == "/quit" then break end
    broadcast(writer, name .. ": " .. line .. "\n")
  end
  members[writer] = nil
  broadcast(writer, name .. " left\n")
end

coronet.run(function()
  local server = assert(tcp.Server.create(tcp.Where_to_listen.on_port(port), member, { on_handler_error = "ignore" }))
  io.stderr:write(("chat server listening on port %d\n"):format(server:listening_on()))
  coronet.signal("SIGTERM", "SIGINT"):wait()
  server:close({ close_existing_connections = true }):wait()
end)
