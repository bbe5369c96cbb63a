-- bench/tls_peer.lua: both ends of the TLS rows of bench/run.sh, the same
-- code over TLS and over plain TCP so that the two differ by TLS alone.
--
--   lua5.4 bench/tls_peer.lua server PORT plain|tls CERT KEY
--     each connection: reads until the peer's end, answers "<bytes>\n", closes
--   lua5.4 bench/tls_peer.lua bulk PORT plain|tls CA MIB
--     one connection sends MIB MiB in 64 KiB writes, half-closes, waits for
--     the count; prints "bytes seconds"
--   lua5.4 bench/tls_peer.lua connections PORT plain|tls CA N CONCURRENCY
--     N connections, CONCURRENCY at a time, each sending "x" and waiting for
--     "1"; prints "connections seconds"
--   lua5.4 bench/tls_peer.lua idle PORT plain|tls CA N
--     opens N connections (50 handshakes at a time), each sending "x" and
--     staying open; prints "ready N" once all are up, then holds them until
--     SIGTERM (the server's memory per idle connection is read meanwhile)
-- The client sessions are not resumed: every connection is a full handshake.
-- Finds the module built in the checkout by itself.
local root = (arg[0]:match("^(.*)/bench/[^/]*$") or ".")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local coronet = require "coronet"
local tcp = coronet.tcp

local mode, port, security = arg[1], tonumber(arg[2]), arg[3]
if not (mode and port and (security == "plain" or security == "tls")) then
  io.stderr:write("usage: see the head of bench/tls_peer.lua\n")
  os.exit(2)
end
local tls = security == "tls"

local function serve(cert_file, key_file)
  local function count_then_answer(_, reader, writer)
    local total = 0
    while true do
      local chunk = reader:read()
      if not chunk then break end
      total = total + #chunk
    end
    writer:write(total, "\n")
  end
  local opts = { on_handler_error = "ignore", max_connections = 20000 }
  if tls then opts.tls = { cert_file = cert_file, key_file = key_file } end
  local server = assert(tcp.Server.create(tcp.Where_to_listen.on_port(port), count_then_answer, opts))
  coronet.signal("SIGTERM"):wait()
  server:close()
end

local function connect(ca_file)
  local where = tcp.Where_to_connect.of_host_and_port("localhost", port)
  return assert(tcp.connect(where, tls and { tls = { ca_file = ca_file } } or nil))
end

local function bulk(ca_file, mib)
  local piece = string.rep("b", 64 * 1024)
  local start = coronet.now()
  local sock, reader, writer = connect(ca_file)
  for _ = 1, mib * 16 do assert(writer:write(piece)) end
  sock:shutdown("send")
  local answer = assert(reader:read_line())
  local seconds = coronet.now() - start
  sock:close()
  assert(tonumber(answer) == mib * 1048576, "the server counted " .. answer)
  print(mib * 1048576, seconds)
end

local function connections(ca_file, n, concurrency)
  local left, start = n, coronet.now()
  local workers = {}
  for i = 1, concurrency do
    workers[i] = coronet.spawn(function()
      while left > 0 do
        left = left - 1
        local sock, reader, writer = connect(ca_file)
        assert(writer:write("x"))
        sock:shutdown("send")
        assert(reader:read_line() == "1")
        sock:close()
      end
      return true
    end)
  end
  for _, worker in ipairs(workers) do assert(worker:join()) end
  print(n, coronet.now() - start)
end

local function idle(ca_file, n)
  local socks, left = {}, n
  local openers = {}
  for i = 1, math.min(50, n) do
    openers[i] = coronet.spawn(function()
      while left > 0 do
        left = left - 1
        local sock, _, writer = connect(ca_file)
        assert(writer:write("x"))
        socks[#socks + 1] = sock
      end
    end)
  end
  for _, opener in ipairs(openers) do opener:join() end
  io.stdout:write("ready ", #socks, "\n")
  io.stdout:flush()
  coronet.signal("SIGTERM", "SIGINT"):wait()
  for _, sock in ipairs(socks) do sock:close() end
end

coronet.run(function()
  if mode == "server" then
    serve(arg[4], arg[5])
  elseif mode == "bulk" then
    bulk(arg[4], assert(tonumber(arg[5]), "MIB"))
  elseif mode == "idle" then
    idle(arg[4], assert(tonumber(arg[5]), "N"))
  elseif mode == "connections" then
    connections(arg[4], assert(tonumber(arg[5]), "N"), assert(tonumber(arg[6]), "CONCURRENCY"))
  else
    error("unknown mode " .. mode)
  end
end)
