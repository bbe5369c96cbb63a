--- coronet.net's name lookups: getaddrinfo and getnameinfo on libuv's
-- threadpool, through the core's one DNS mechanism (csrc/core/dns.c, which
-- connect uses too). Every call waits (yields its fiber); failures return
-- `nil, err, code` with the foundation's codes (`EAI_NONAME` for an unknown
-- host, `EAI_SERVICE` for an unknown service name, `timeout`,
-- `cancelled`...). A lookup whose wait ends early (timeout, cancel) is
-- detached: it finishes in the threadpool and frees itself, and nobody
-- waits for it. Bad arguments raise.
-- @module coronet.net_dns
local core = require "coronet.core"
local errors = require "coronet.errors"

local M = {}

-- The options, argument 2 of fn (`level` from this function's caller, as
-- for errors._argerror): a table or nil (giving {}), its timeout checked.
local function check_opts(opts, fn, level)
  if opts == nil then return {} end
  level = (level or 1) + 1
  if type(opts) ~= "table" then errors._typeerror(2, fn, "table of options", opts, level) end
  local timeout = opts.timeout
  if timeout ~= nil and timeout ~= false and not (type(timeout) == "number" and timeout >= 0) then
    errors._optionerror(fn, "timeout", "seconds >= 0, or nil or false for none", timeout, level)
  end
  return opts
end

local function bad_port(fn, port)
  error(("%s: port %s is outside 0..65535"):format(fn, tostring(port)), 4)
end

-- The service as getaddrinfo takes it: a port number becomes its text; a
-- numeric string is checked like a port; a name ("http") goes as given.
local function service_text(service, fn)
  if service == nil then return nil end
  if type(service) == "number" then
    if math.type(service) ~= "integer" or service < 0 or service > 65535 then bad_port(fn, service) end
    return tostring(service)
  end
  if type(service) ~= "string" then
    error(("%s: option 'service' must be a port number or a string (got %s)"):format(fn, type(service)), 3)
  end
  if service:match("^%d+$") and tonumber(service) > 65535 then bad_port(fn, service) end
  return service
end

local function lookup(host, opts, socktype, fn)
  if type(host) ~= "string" then errors._typeerror(1, fn, "host string", host, 2) end
  opts = check_opts(opts, fn, 2)
  return core.getaddrinfo(host, service_text(opts.service, fn), socktype, opts.timeout)
end

--- Resolves `host` to its addresses, stream and datagram alike, each
-- address once, in the resolver's order.
-- @tparam string host a DNS name or an IP literal
-- @tparam[opt] table opts `service` (a port number 0..65535, a numeric
-- string or a service name such as `"http"`; without it ports are 0),
-- `timeout` (seconds; none by default)
-- @treturn {address,...} the address values (`coronet.address`), or `nil, err, code`
function M.getaddrinfo(host, opts)
  return lookup(host, opts, "any", "net.getaddrinfo")
end

--- As `getaddrinfo`, only the addresses usable for stream (TCP) sockets.
-- @tparam string host
-- @tparam[opt] table opts as for `getaddrinfo`
-- @treturn {address,...} or `nil, err, code`
function M.getaddrinfo_stream(host, opts)
  return lookup(host, opts, "stream", "net.getaddrinfo_stream")
end

--- As `getaddrinfo`, only the addresses usable for datagram (UDP) sockets.
-- @tparam string host
-- @tparam[opt] table opts as for `getaddrinfo`
-- @treturn {address,...} or `nil, err, code`
function M.getaddrinfo_datagram(host, opts)
  return lookup(host, opts, "datagram", "net.getaddrinfo_datagram")
end

--- The host name and service name of an IP address (reverse lookup).
-- Without a name for the host or port, their numeric text is returned.
-- @param addr an IP address value; a unix address raises
-- @tparam[opt] table opts `datagram` (look the port up as a UDP service),
-- `timeout` (seconds)
-- @treturn string host
-- @treturn string service; or `nil, err, code`
function M.getnameinfo(addr, opts)
  if not core.is_address(addr) then errors._typeerror(1, "net.getnameinfo", "address value", addr) end
  opts = check_opts(opts, "net.getnameinfo")
  return core.getnameinfo(addr, opts.datagram, nil, opts.timeout)
end

return M
