-- proxy.lua LISTEN_PORT TARGET_HOST TARGET_PORT: a TCP proxy. For each client
-- it connects to the target and copies both directions with
-- reader:transfer_to (in C: no Lua string per chunk), two fibers per client.
-- Back-pressure holds either side to the other's pace, and a half-close
-- passes through: the client's EOF shuts the upstream's sending side down,
-- and the other way round. Serves until SIGTERM or SIGINT; port 0 picks a free port.
-- Finds the module built in the checkout by itself.
local root = (arg[0]:match("^(.*)/examples/[^/]*$") or ".")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local coronet = require "coronet"
local tcp = coronet.tcp

local listen_port, target_host, target_port = tonumber(arg[1] or ""), arg[2], tonumber(arg[3] or "")
if not (listen_port and target_host and target_port) then
  io.stderr:write("usage: lua5.4 examples/proxy.lua LISTEN_PORT TARGET_HOST TARGET_PORT\n")
  os.exit(2)
end
local target = tcp.Where_to_connect.of_host_and_port(target_host, target_port)

local function log(...) io.stderr:write(string.format(...), "\n") end

-- Copies one direction until EOF. An error (a reset, a close) ends the
-- other direction too: closing both sockets wakes its transfer.
local function pump(from, to, client, upstream)
  local n, err = from:transfer_to(to)
  if not n then
    client:abort()
    upstream:abort()
  end
  return n, err
end

local function serve(address, from_client, to_client)
  local upstream, from_upstream, to_upstream = tcp.connect(target, { timeout = 10 })
  if not upstream then
    log("proxy: %s: cannot reach the target: %s", tostring(address), tostring(from_upstream))
    return
  end
  local client = from_client:socket()
  local back = coronet.spawn(pump, from_upstream, to_client, client, upstream)
  pump(from_client, to_upstream, client, upstream)
  back:join()
  upstream:close()
end

coronet.run(function()
  local server = assert(tcp.Server.create(tcp.Where_to_listen.on_port(listen_port), serve,
    { on_handler_error = "ignore", max_connections = 10000 }))
  log("proxy listening on port %d, forwarding to %s:%d", server:listening_on(), target_host, target_port)
  coronet.signal("SIGTERM", "SIGINT"):wait()
  server:close()
end)
