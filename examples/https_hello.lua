-- https_hello.lua PORT CERT_FILE KEY_FILE: examples/http_hello.lua's server
-- (the same handler, loaded from it) over TLS, with ALPN "http/1.1". Check
-- it with `curl --cacert CA_FILE https://localhost:PORT/`. Serves until
-- SIGTERM or SIGINT; port 0 picks a free port. Finds the module built in the checkout
-- by itself.
local root = (arg[0]:match("^(.*)/examples/[^/]*$") or ".")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local coronet = require "coronet"
local tcp = coronet.tcp

local port, cert_file, key_file = tonumber(arg[1] or ""), arg[2], arg[3]
if not (port and cert_file and key_file) then
  io.stderr:write("usage: https_hello.lua PORT CERT_FILE KEY_FILE\n")
  os.exit(2)
end
local serve = dofile(root .. "/examples/http_hello.lua")

coronet.run(function()
  local tls = { cert_file = cert_file, key_file = key_file, alpn = { "http/1.1" } }
  local server = assert(tcp.Server.create(tcp.Where_to_listen.on_port(port), serve,
    { on_handler_error = "ignore", max_connections = 20000, tls = tls }))
  io.stderr:write(("https_hello listening on port %d\n"):format(server:listening_on()))
  coronet.signal("SIGTERM", "SIGINT"):wait()
  server:close()
end)
