-- client.lua HOST PORT [LINE...]: sends each line, prints each reply.
local root = (arg[0]:match("^(.*)/examples/[^/]*$") or ".")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local coronet = require "coronet"
local tcp = coronet.tcp

local host, port = arg[1] or "127.0.0.1", tonumber(arg[2] or "7000")
local lines = { table.unpack(arg, 3) }
if #lines == 0 then lines = { "hello", "coronet" } end

coronet.run(function()
  local ok, err = tcp.with_connection(tcp.Where_to_connect.of_host_and_port(host, port), function(_, reader, writer)
    for _, line in ipairs(lines) do
      writer:write(line, "\n")
      print(assert(reader:read_line({ timeout = 5 })))
    end
    return true
  end, { timeout = 5 })
  if not ok then
    io.stderr:write("client: ", tostring(err), "\n")
    os.exit(1)
  end
end)
