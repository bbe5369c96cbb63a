--- Where to connect and where to listen (Async's Where_to_connect and
-- Where_to_listen), validated when made.
-- @module coronet.where
local core = require "coronet.core"

local M = { Where_to_connect = {}, Where_to_listen = {} }

local function check_port(port, allow_zero)
  if math.type(port) ~= "integer" or port < (allow_zero and 0 or 1) or port > 65535 then
    error(("coronet: bad port %s (an integer %d..65535)"):format(tostring(port), allow_zero and 0 or 1), 3)
  end
end

--- Connect to a host name or literal and a port; names resolve through libuv's threadpool.
-- @tparam string host
-- @tparam integer port
function M.Where_to_connect.of_host_and_port(host, port)
  assert(type(host) == "string" and host ~= "", "coronet: host must be a non-empty string")
  check_port(port, false)
  return { host = host, port = port, description = host .. ":" .. port }
end

--- Connect to a unix socket path.
-- @tparam string path
function M.Where_to_connect.of_file(path)
  local address = core.address_unix(path)
  return { address = address, description = path }
end

--- Connect to an address value.
-- @param address from coronet.address or coronet.unix_address
function M.Where_to_connect.of_address(address)
  assert(core.is_address(address), "coronet: of_address expects an address value")
  return { address = address, description = tostring(address) }
end

--- Listen on a port on every IPv4 interface (as Async does).
-- @tparam integer port
function M.Where_to_listen.on_port(port)
  check_port(port, true)
  return { address = core.address_ip("0.0.0.0", port) }
end

--- Listen on a port the OS chooses (read it back with `listening_on`).
function M.Where_to_listen.on_port_chosen_by_os()
  return { address = core.address_ip("0.0.0.0", 0) }
end

--- Listen on a unix socket path (removed again when the server closes).
-- @tparam string path
function M.Where_to_listen.on_file(path)
  return { address = core.address_unix(path) }
end

--- Listen on one address (IPv4 or IPv6, or a unix address).
-- @param address
function M.Where_to_listen.of_address(address)
  assert(core.is_address(address), "coronet: of_address expects an address value")
  return { address = address }
end

return M
