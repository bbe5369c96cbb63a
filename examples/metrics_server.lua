-- metrics_server.lua PORT [APP_PORT]: an echo server on APP_PORT (default 0:
-- a port the OS picks) and, on PORT, an HTTP endpoint /metrics exposing
-- coronet.metrics() and the echo server's stats() in the Prometheus text
-- format (version 0.0.4). Prints "metrics on port N" and "echo on port N";
-- stops on SIGINT or SIGTERM. Try: curl http://127.0.0.1:PORT/metrics
-- Finds the module built in the checkout by itself.
local root = (arg[0]:match("^(.*)/examples/[^/]*$") or ".")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local coronet = require "coronet"
local tcp = coronet.tcp

local metrics_port = math.tointeger(tonumber(arg[1] or ""))
local app_port = math.tointeger(tonumber(arg[2] or "0"))
if not metrics_port or not app_port then
  io.stderr:write("usage: lua5.4 examples/metrics_server.lua PORT [APP_PORT]\n")
  os.exit(2)
end

-- name, type, help, field of coronet.metrics()
local LOOP_METRICS = {
  { "connections_open", "gauge", "Streams whose descriptor is not closed yet.", "connections_open" },
  { "accepted_total", "counter", "Connections accepted by every server.", "accepted" },
  { "refused_total", "counter", "Times a server at max_connections left a waiting client in its backlog.", "refused" },
  { "dropped_total", "counter", "Connections accepted and closed at once in drop mode.", "dropped" },
  { "accept_errors_total", "counter", "Failed accepts.", "accept_errors" },
  { "received_bytes_total", "counter", "Bytes read by every stream, closed ones included.", "bytes_in" },
  { "sent_bytes_total", "counter", "Bytes handed to the kernel by every stream, closed ones included.", "bytes_out" },
  { "fibers_alive", "gauge", "Fibers spawned and not yet finished.", "fibers_alive" },
  { "timers_pending", "gauge", "Timers started and not yet fired or stopped.", "timers_pending" },
  { "loop_lag_seconds", "gauge", "How late timers fired, the largest in the last two seconds.", "loop_lag" },
  { "dns_in_flight", "gauge", "Threadpool name lookups not finished.", "dns_in_flight" },
}

-- name, type, help, field of server:stats()
local SERVER_METRICS = {
  { "server_connections", "gauge", "The server's connections open now.", "connections" },
  { "server_accepted_total", "counter", "Connections the server accepted.", "accepted" },
  { "server_dropped_total", "counter", "Connections the server dropped in drop mode.", "dropped" },
  { "server_accept_errors_total", "counter", "The server's failed accepts.", "accept_errors" },
  { "server_received_bytes_total", "counter", "Bytes read from the server's connections.", "bytes_in" },
  { "server_sent_bytes_total", "counter", "Bytes written to the server's connections.", "bytes_out" },
}

-- A number as the format wants it: integers without ".0".
local function number(v)
  if math.type(v) == "integer" then return tostring(v) end
  return ("%.17g"):format(v)
end

local function family(out, name, kind, help)
  out[#out + 1] = ("# HELP coronet_%s %s\n# TYPE coronet_%s %s\n"):format(name, help, name, kind)
end

-- The exposition text: every loop metric, then every server metric with a
-- label per named server ({ echo = server }).
local function exposition(servers)
  local out, m = {}, coronet.metrics()
  for _, def in ipairs(LOOP_METRICS) do
    family(out, def[1], def[2], def[3])
    out[#out + 1] = ("coronet_%s %s\n"):format(def[1], number(m[def[4]]))
  end
  local stats = {}
  for name, server in pairs(servers) do stats[name] = server:stats() end
  for _, def in ipairs(SERVER_METRICS) do
    family(out, def[1], def[2], def[3])
    for name, st in pairs(stats) do
      out[#out + 1] = ("coronet_%s{server=\"%s\"} %s\n"):format(def[1], name, number(st[def[4]]))
    end
  end
  return table.concat(out)
end

local function respond(writer, status, content_type, body)
  writer:write("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type, "\r\nContent-Length: ", #body,
    "\r\nConnection: close\r\n\r\n", body)
end

-- One request per connection: the request line, headers up to the blank line, the answer.
local function serve_http(servers, reader, writer)
  local request = reader:read_line()
  if not request then return end
  repeat
    local header = reader:read_line()
  until not header or header == ""
  local method, path = request:match("^(%u+) (%S+) HTTP/1%.%d$")
  if method ~= "GET" then
    respond(writer, "400 Bad Request", "text/plain", "bad request\n")
  elseif path == "/metrics" then
    respond(writer, "200 OK", "text/plain; version=0.0.4; charset=utf-8", exposition(servers))
  else
    respond(writer, "404 Not Found", "text/plain", "try /metrics\n")
  end
end

local function echo(_, reader, writer)
  while true do
    local data = reader:read()
    if not data or not writer:write(data) then return end
  end
end

local function listen(port, handler)
  local where = tcp.Where_to_listen.bind_to(tcp.Bind_to_address.localhost(), tcp.Bind_to_port.on_port(port))
  return assert(tcp.Server.create(where, handler, { on_handler_error = "ignore" }))
end

coronet.run(function()
  local servers = {}
  servers.echo = listen(app_port, echo)
  local http = listen(metrics_port, function(_, reader, writer) serve_http(servers, reader, writer) end)
  print(("metrics on port %d"):format(http:listening_on()))
  print(("echo on port %d"):format(servers.echo:listening_on()))
  io.stdout:flush()
  coronet.signal("SIGTERM", "SIGINT"):wait()
  http:close()
  servers.echo:close()
end)
