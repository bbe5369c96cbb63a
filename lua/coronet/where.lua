--- Where to connect and where to listen (Async's Where_to_connect and
-- Where_to_listen, with Bind_to_address and Bind_to_port), validated when
-- made. `coronet.tcp` holds the same tables: `tcp.Where_to_listen.bind_to(
-- tcp.Bind_to_address.localhost(), tcp.Bind_to_port.on_port_chosen_by_os())`.
-- Misuse raises, naming the function and the argument.
-- @module coronet.where
local core = require "coronet.core"
local errors = require "coronet.errors"

local M = {}

-- What a bad argument was, for a message: a string's or a number's value, any other's type.
local function got(value)
  if type(value) == "string" then return "'" .. value .. "'" end
  if type(value) == "number" then return tostring(value) end
  return errors._typename(value)
end

-- Raises "bad argument #<n> to '<fn>' (<what> expected, got <got_text>)" at the caller's caller.
local function bad_argument(fn, n, what, got_text)
  errors._argerror(n, fn, ("%s expected, got %s"):format(what, got_text), 2)
end

-- The port, argument n of fn: an integer 1..65535 (0 too if allow_zero).
local function check_port(port, allow_zero, fn, n)
  if math.type(port) ~= "integer" or port < (allow_zero and 0 or 1) or port > 65535 then
    errors._argerror(n, fn, ("bad port %s (an integer %d..65535 expected)"):format(got(port), allow_zero and 0 or 1),
      2)
  end
end

-- A string path, argument 1 of fn, as a unix address value (raising naming fn).
local function unix_address(path, fn)
  if type(path) ~= "string" then bad_argument(fn, 1, "a path string", got(path)) end
  local ok, address = pcall(core.address_unix, path)
  if not ok then errors._argerror(1, fn, tostring(address):match("%((.*)%)$") or tostring(address), 2) end
  return address
end

-- An address value, argument 1 of fn.
local function check_address(address, fn)
  if not core.is_address(address) then bad_argument(fn, 1, "an address value", got(address)) end
end

local function is_inet(address) return address.family == "inet" or address.family == "inet6" end

-- "the unix address /tmp/x.sock", "the inet6 address [::1]:80".
local function describe_address(address)
  return ("the %s address %s"):format(address.family, tostring(address))
end

--- Where to connect: a host and port, a unix socket path, or an address value.
-- @section Where_to_connect

local Where_to_connect = {}
M.Where_to_connect = Where_to_connect

--- Connect to a host name or literal and a port; names resolve through libuv's threadpool.
-- @tparam string host
-- @tparam integer port
function Where_to_connect.of_host_and_port(host, port)
  if type(host) ~= "string" or host == "" then
    errors._argerror(1, "Where_to_connect.of_host_and_port", "host must be a non-empty string, got " .. got(host))
  end
  check_port(port, false, "Where_to_connect.of_host_and_port", 2)
  return { host = host, port = port, description = host .. ":" .. port }
end

--- Connect to a unix socket path.
-- @tparam string path
function Where_to_connect.of_file(path)
  local address = unix_address(path, "Where_to_connect.of_file")
  return { address = address, description = path }
end

--- Connect to an address value.
-- @param address from coronet.address or coronet.unix_address
function Where_to_connect.of_address(address)
  check_address(address, "Where_to_connect.of_address")
  return { address = address, description = tostring(address) }
end

--- Async's older name of `of_host_and_port` (the same function).
-- @function Where_to_connect.to_host_and_port
-- @tparam string host
-- @tparam integer port
Where_to_connect.to_host_and_port = Where_to_connect.of_host_and_port

--- Async's older name of `of_file` (the same function).
-- @function Where_to_connect.to_file
-- @tparam string path
Where_to_connect.to_file = Where_to_connect.of_file

--- Async's older `to_inet_address`: `of_address` for an inet (IPv4 or IPv6)
-- address only; a unix address raises.
-- @param address from coronet.address
function Where_to_connect.to_inet_address(address)
  if not core.is_address(address) then
    bad_argument("Where_to_connect.to_inet_address", 1, "an inet address", got(address))
  end
  if not is_inet(address) then
    bad_argument("Where_to_connect.to_inet_address", 1, "an inet address", describe_address(address))
  end
  return Where_to_connect.of_address(address)
end

--- Async's older `to_unix_address`: `of_address` for a unix address only;
-- an inet address raises.
-- @param address from coronet.unix_address
function Where_to_connect.to_unix_address(address)
  if not core.is_address(address) then
    bad_argument("Where_to_connect.to_unix_address", 1, "a unix address", got(address))
  end
  if address.family ~= "unix" then
    bad_argument("Where_to_connect.to_unix_address", 1, "a unix address", describe_address(address))
  end
  return Where_to_connect.of_address(address)
end

--- The address half of `Where_to_listen.bind_to`: every interface, the
-- loopback interface, or one IP.
-- @section Bind_to_address

local Bind_to_address = {}
M.Bind_to_address = Bind_to_address
-- The values made here (a metatable marks them, so misuse is caught).
local Address_choice = {}

--- Every IPv4 interface: 0.0.0.0 (Async's `All_addresses`, as `Where_to_listen.on_port`).
function Bind_to_address.all_addresses() return setmetatable({ ip = "0.0.0.0" }, Address_choice) end

--- The loopback interface: 127.0.0.1 (Async's `Localhost`).
function Bind_to_address.localhost() return setmetatable({ ip = "127.0.0.1" }, Address_choice) end

--- One IP (Async's `Address`): an IPv4 or IPv6 literal; raises on anything else.
-- @tparam string ip e.g. "192.0.2.1" or "::1"
function Bind_to_address.address(ip)
  if type(ip) ~= "string" or not pcall(core.address_ip, ip, 0) then
    bad_argument("Bind_to_address.address", 1, "an IPv4 or IPv6 address literal", got(ip))
  end
  return setmetatable({ ip = ip }, Address_choice)
end

--- The port half of `Where_to_listen.bind_to`.
-- @section Bind_to_port

local Bind_to_port = {}
M.Bind_to_port = Bind_to_port
local Port_choice = {}

--- That port (Async's `On_port`); 0 lets the OS choose.
-- @tparam integer port 0..65535
function Bind_to_port.on_port(port)
  if math.type(port) ~= "integer" or port < 0 or port > 65535 then
    bad_argument("Bind_to_port.on_port", 1, "a port 0..65535", got(port))
  end
  return setmetatable({ port = port }, Port_choice)
end

--- A port the OS chooses (Async's `On_port_chosen_by_os`; read it back with `listening_on`).
function Bind_to_port.on_port_chosen_by_os() return setmetatable({ port = 0 }, Port_choice) end

--- Where to listen: a port, a unix socket path, an address value, or the
-- address and port chosen with `bind_to`. A server's `listening_on()` gives
-- the port (inet) or the path (unix), or what `create`'s `listening_on` makes.
-- @section Where_to_listen

local Where_to_listen = {}
M.Where_to_listen = Where_to_listen

--- Listen on a port on every IPv4 interface (as Async does).
-- @tparam integer port
function Where_to_listen.on_port(port)
  check_port(port, true, "Where_to_listen.on_port", 1)
  return { address = core.address_ip("0.0.0.0", port) }
end

--- Listen on a port the OS chooses (read it back with `listening_on`).
function Where_to_listen.on_port_chosen_by_os()
  return { address = core.address_ip("0.0.0.0", 0) }
end

--- Listen on a unix socket path (removed again when the server closes).
-- @tparam string path
function Where_to_listen.on_file(path)
  return { address = unix_address(path, "Where_to_listen.on_file") }
end

--- Listen on one address (IPv4 or IPv6, or a unix address).
-- @param address
function Where_to_listen.of_address(address)
  check_address(address, "Where_to_listen.of_address")
  return { address = address }
end

--- Listen on an address and a port chosen apart (Async's `bind_to`):
-- `bind_to(Bind_to_address.localhost(), Bind_to_port.on_port_chosen_by_os())`.
-- @param address from `Bind_to_address`
-- @param port from `Bind_to_port`
function Where_to_listen.bind_to(address, port)
  if getmetatable(address) ~= Address_choice then
    bad_argument("Where_to_listen.bind_to", 1, "a Bind_to_address value", got(address))
  end
  if getmetatable(port) ~= Port_choice then
    bad_argument("Where_to_listen.bind_to", 2, "a Bind_to_port value", got(port))
  end
  return { address = core.address_ip(address.ip, port.port) }
end

local SOCKET_TYPES = { tcp = is_inet, unix = function(address) return address.family == "unix" end }

-- Raises "Where_to_listen.create: bad field '<field>' (<why>)" at create's caller.
local function bad_field(field, why)
  error(("Where_to_listen.create: bad field '%s' (%s)"):format(field, why), 3)
end

--- Async's `Where_to_listen.create`, with named fields: listen on `address`
-- (an address value); `socket_type` ("tcp" for inet and inet6 addresses,
-- "unix"; optional) is checked against it; `listening_on(bound_address)`
-- (optional) makes what the server's `listening_on()` returns, from the
-- address it is bound to (the OS's port in it).
-- @tparam table spec `{socket_type =, address =, listening_on =}`
function Where_to_listen.create(spec)
  if type(spec) ~= "table" then
    bad_argument("Where_to_listen.create", 1, "a table {socket_type=, address=, listening_on=}", got(spec))
  end
  local address, socket_type, listening_on = spec.address, spec.socket_type, spec.listening_on
  if not core.is_address(address) then
    bad_field("address", "an address value expected, got " .. got(address))
  end
  if socket_type ~= nil then
    local fits = SOCKET_TYPES[socket_type]
    if not fits then
      bad_field("socket_type", '"tcp" or "unix" expected, got ' .. got(socket_type))
    end
    if not fits(address) then
      bad_field("socket_type", ('"%s" does not fit %s'):format(socket_type, describe_address(address)))
    end
  end
  if listening_on ~= nil and type(listening_on) ~= "function" then
    bad_field("listening_on", "a function expected, got " .. got(listening_on))
  end
  return { address = address, listening_on = listening_on }
end

return M
