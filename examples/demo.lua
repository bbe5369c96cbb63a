-- demo.lua: a self-terminating tour. Starts an echo server and a line server,
-- runs 100 concurrent clients against them, shows an error value, and stops.
local root = (arg[0]:match("^(.*)/examples/[^/]*$") or ".")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local coronet = require "coronet"
local tcp = coronet.tcp

coronet.run(function()
  -- A server: one fiber per client, plain sequential code.
  local server = assert(tcp.Server.create(tcp.Where_to_listen.on_port_chosen_by_os(), function(address, reader, writer)
    while true do
      local line = reader:read_line()
      if not line then return end
      writer:write(("%s says %q\n"):format(address.ip, line:upper()))
    end
  end))
  local port = server:listening_on()
  print(("server listening on port %d"):format(port))

  -- 100 clients at once, each in its own fiber.
  local started = coronet.now()
  local fibers = {}
  for i = 1, 100 do
    fibers[i] = coronet.spawn(function()
      return tcp.with_connection(tcp.Where_to_connect.of_host_and_port("127.0.0.1", port), function(_, reader, writer)
        writer:write("hello from client " .. i .. "\n")
        return reader:read_line()
      end)
    end)
  end
  local replies = 0
  for i = 1, 100 do
    local reply = fibers[i]:join()
    if reply then replies = replies + 1 end
    if i == 1 or i == 100 then print("reply " .. i .. ": " .. reply) end
  end
  print(("%d clients served in %.1f ms"):format(replies, (coronet.now() - started) * 1000))
  -- Each handler ends when it reads its client's EOF; a connection holds its slot until its descriptor closes.
  while server:num_connections() > 0 do coronet.sleep(0.001) end
  print("every server-side connection has closed")

  -- Failures are values, not exceptions.
  local sock, err, code = tcp.connect(tcp.Where_to_connect.of_host_and_port("127.0.0.1", 1))
  print(("connecting to a closed port: sock=%s code=%s message=%q"):format(tostring(sock), code, tostring(err)))

  server:close():wait()
  print("server closed; stats: accepted " .. server:stats().accepted)
end)
print("demo done")
