-- nc.lua HOST PORT: a netcat-like client. What arrives on stdin goes to the
-- connection (its end is passed on as a half-close), what the peer sends
-- goes to stdout; it exits once the peer has closed. stdin and stdout are
-- streamed by coronet (pipes, terminals, sockets); a regular file (`< in`,
-- `> out`), which libuv cannot stream, is read or written in chunks instead.
local root = (arg[0]:match("^(.*)/examples/[^/]*$") or ".")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local coronet = require "coronet"
local process = require "coronet.process"
local tcp = coronet.tcp

local host, port = arg[1], math.tointeger(tonumber(arg[2] or ""))
if not host or not port then
  io.stderr:write("usage: lua5.4 nc.lua HOST PORT\n")
  os.exit(2)
end

-- stdin -> the connection, then a half-close (the peer reads EOF).
local function send_input(writer)
  local stdin, _, code = process.open_descriptor(io.stdin)
  if stdin then
    stdin:reader():transfer_to(writer)
    stdin:close()
  elseif code == "EINVAL" then -- a regular file: read it in chunks
    for chunk in io.stdin:lines(64 * 1024) do
      if not writer:write(chunk) then return end
    end
    writer:close()
  else
    writer:close()
  end
end

-- The connection -> stdout until the peer's EOF; nil or the error.
local function receive_output(reader)
  local stdout, err, code = process.open_descriptor(io.stdout)
  if stdout then
    local _, failure = reader:transfer_to(stdout:writer())
    stdout:close()
    stdout:close_finished()
    return failure
  end
  if code ~= "EINVAL" then return err end
  while true do -- a regular file
    local chunk, failure, why = reader:read()
    if not chunk then return why ~= "closed" and failure or nil end
    io.stdout:write(chunk)
  end
end

local ok = coronet.run(function()
  local sock, reader, writer = tcp.connect(tcp.Where_to_connect.of_host_and_port(host, port), { timeout = 10 })
  if not sock then
    io.stderr:write("nc.lua: ", tostring(reader), "\n")
    return false
  end
  coronet.spawn(send_input, writer)
  local err = receive_output(reader)
  sock:close()
  if err then io.stderr:write("nc.lua: ", tostring(err), "\n") end
  return err == nil
end)
os.exit(ok and 0 or 1)
