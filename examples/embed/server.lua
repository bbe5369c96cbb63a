-- server.lua: run by examples/embed/host.c (embed_host), which preloads
-- coronet.core and sets package.path. A line server that upper-cases, one
-- client through it, then "embed ok".
--
-- Default mode: coronet.run drives coronet's own loop.
-- CORONET_EMBED_HOST_LOOP=1: the host owns the loop, so this script only
-- spawns the fiber and returns; the host runs uv_run and then checks the
-- global `embed_done`.
local coronet = require "coronet"
local tcp = coronet.tcp

local function main()
  local server = assert(tcp.Server.create(tcp.Where_to_listen.on_port_chosen_by_os(), function(_, reader, writer)
    while true do
      local line = reader:read_line()
      if not line then return end
      assert(writer:write(line:upper() .. "\n"))
    end
  end))
  local port = server:listening_on()

  local reply, err = tcp.with_connection(tcp.Where_to_connect.of_host_and_port("127.0.0.1", port),
    function(_, reader, writer)
      assert(writer:write("hello from the embedded host\n"))
      assert(writer:flush())
      return reader:read_line()
    end, { timeout = 5 })
  if reply ~= "HELLO FROM THE EMBEDDED HOST" then
    error(("embed: unexpected reply %s (%s)"):format(tostring(reply), tostring(err)), 0)
  end

  local _, close_err = server:close():wait(5) -- nothing once closed, or nil, err, code
  if close_err then error("embed: server close: " .. tostring(close_err), 0) end
  print("embed ok")
  embed_done = true -- luacheck: ignore (read by host.c)
end

if os.getenv("CORONET_EMBED_HOST_LOOP") == "1" then
  coronet.spawn(main)
else
  coronet.run(main)
end
