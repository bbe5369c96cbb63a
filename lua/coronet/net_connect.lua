--- The connecting half of `coronet.net` (Eio's `Net.connect` and
-- `Net.with_tcp_connect`), and the flow conveniences. A flow is the
-- foundation's socket object (`flow:reader()`, `flow:writer()`,
-- `flow:shutdown("send")`, `flow:close()` work as in `coronet.tcp`), with
-- Eio's `flow:read`, `flow:write` and `flow:copy_to`, which every socket has
-- (coronet.socket defines them).
--
-- Failures are returned as `nil, err, code`, never raised; misuse raises.
-- `err.kind` is Eio's category: `"refused"`, `"no_matching_addresses"` (with
-- the resolver's code, `EAI_NONAME`, or `EAI_AGAIN` where no resolver
-- answers) or `"timeout"`; a flow that failed reads `"connection_reset"`
-- (EPIPE, ECONNRESET). A failed connect's error names the last attempt's
-- address and errno, and `err.attempts` lists every address tried, in the
-- order the attempts started: `{ {address = a, code = "ECONNREFUSED"}, ... }`.
-- @module coronet.net_connect
local core = require "coronet.core"
local errors = require "coronet.errors"
local net_dns = require "coronet.net_dns"
local tcp = require "coronet.tcp"
local tls = require "coronet.tls"
require "coronet.socket" -- the flow methods: read, write, copy_to

local pack, unpack = table.pack, table.unpack

local M = {}

local DEFAULT_HAPPY_EYEBALLS_DELAY = 0.25

--- Connecting.
-- @section connect

-- The options, argument n of fn: a table or nil (giving {}).
local function check_opts(opts, fn, n)
  if opts == nil then return {} end
  if type(opts) ~= "table" then errors._typeerror(n, fn, "table of options", opts, 2) end
  if opts.sw ~= nil and (type(opts.sw) ~= "table" or type(opts.sw.attach) ~= "function") then
    error(fn .. ": option 'sw' must be a switch", 3)
  end
  if opts.tls ~= nil and type(opts.tls) ~= "table" then errors._optionerror(fn, "tls", "a table", opts.tls, 2) end
  return opts
end

local function check_timeout(timeout, fn)
  if timeout ~= nil and timeout ~= false and not (type(timeout) == "number" and timeout >= 0) then
    error(fn .. ": option 'timeout' must be seconds >= 0, or nil or false for none", 3)
  end
end

--- Connects to one address. `timeout` bounds the attempt (none by default,
-- as in Eio); with `sw`, the flow is attached to the switch, which closes it
-- at its end.
-- @param addr an address value (`coronet.address(ip, port)`, `coronet.unix_address(path)`)
-- With `tls` (client options, see coronet.tls; `server_name` defaults to
-- the address's IP) the flow returned has finished its TLS handshake.
-- @tparam[opt] table opts `sw`, `timeout`, `tls`
-- @return flow, or `nil, err, code`
function M.connect(addr, opts)
  if not core.is_address(addr) then errors._typeerror(1, "coronet.net.connect", "address value", addr) end
  opts = check_opts(opts, "coronet.net.connect", 2)
  check_timeout(opts.timeout, "coronet.net.connect")
  local flow, err, code = core.connect { address = addr, timeout = opts.timeout, caller = "net.connect" }
  if not flow then return nil, err, code end
  if opts.tls then
    local ok, terr, tcode = tls.connect(flow, opts.tls, addr.ip)
    if not ok then return nil, terr, tcode end
  end
  if opts.sw then opts.sw:attach(flow) end
  return flow
end

-- A port number, a numeric string, or nil for a service name. A port out
-- of 0..65535 raises.
local function numeric_port(service, fn)
  local port = math.tointeger(tonumber(service))
  if type(service) == "string" and not service:match("^%d+$") then port = nil end
  if port == nil then
    if type(service) ~= "string" or service == "" then
      error(fn .. ": service must be a port number or a service name", 3)
    end
    return nil
  end
  if port < 0 or port > 65535 then error(fn .. ": port " .. port .. " is outside 0..65535", 3) end
  return port
end

local function check_addresses(list, fn)
  if type(list) ~= "table" or #list == 0 then error(fn .. ": option 'addresses' must be a non-empty array", 3) end
  for i = 1, #list do
    if not core.is_address(list[i]) then error(fn .. ": addresses[" .. i .. "] is not an address value", 3) end
  end
end

-- A service name goes to coronet.net's resolver (getaddrinfo with the
-- service), whose answer is then tried as explicit addresses.
local function resolve_service(host, service)
  local addresses, err, code = net_dns.getaddrinfo_stream(host, { service = service })
  if not addresses then return nil, err, code end
  if #addresses == 0 then
    return nil, errors.new("no_matching_addresses", "connect to " .. host .. ":" .. service .. ": no address"),
      "no_matching_addresses"
  end
  return addresses
end

local function connect_request(host, service, opts, fn)
  check_timeout(opts.timeout, fn)
  local request = { attempt_timeout = opts.timeout, caller = fn,
                    happy_eyeballs_delay = tcp.happy_eyeballs_delay(opts.happy_eyeballs, DEFAULT_HAPPY_EYEBALLS_DELAY, fn) }
  if opts.addresses ~= nil then
    check_addresses(opts.addresses, fn)
    request.addresses = opts.addresses
    return request
  end
  local port = numeric_port(service, fn)
  if port then
    request.host, request.port = host, port
    return request
  end
  local addresses, err, code = resolve_service(host, service)
  if not addresses then return nil, err, code end
  request.addresses = addresses
  return request
end

--- Resolves `host` and `service`, connects, runs `f(flow)` and closes the
-- flow when `f` returns or raises (waiting until its close has finished);
-- returns `f`'s results, or re-raises its error. A failed connect returns
-- `nil, err, code` without calling `f`.
--
-- The addresses are tried in the order getaddrinfo returns them, `timeout`
-- bounding each attempt (none by default). With more than one address,
-- Happy Eyeballs (RFC 8305) races them: IPv6 and IPv4 alternate, and the
-- next attempt starts 0.25 s (`happy_eyeballs = {delay = s}`) after the
-- previous one unless that one has connected or failed (a failure starts
-- the next at once); earlier attempts keep running, the first to connect
-- wins and the others are closed. `happy_eyeballs = false` tries one
-- address at a time. `addresses = {addr, ...}` skips DNS. `tls` (client
-- options, see coronet.tls; `server_name` defaults to `host`) runs the TLS
-- handshake before `f`.
-- @tparam string host a name or an IP literal
-- @param service a port number, a numeric string or a service name ("http")
-- @tparam function f
-- @tparam[opt] table opts `timeout`, `addresses`, `happy_eyeballs`, `tls`
-- @return `f`'s results, or `nil, err, code`
function M.with_tcp_connect(host, service, f, opts)
  local fn = "coronet.net.with_tcp_connect"
  if type(host) ~= "string" then errors._typeerror(1, fn, "host string", host) end
  if type(service) ~= "number" and type(service) ~= "string" then
    errors._typeerror(2, fn, "port number or service name", service)
  end
  if type(f) ~= "function" then errors._typeerror(3, fn, "function", f) end
  opts = check_opts(opts, fn, 4)
  local request, err, code = connect_request(host, service, opts, fn)
  if not request then return nil, err, code end
  local flow
  flow, err, code = core.connect(request)
  if not flow then return nil, err, code end
  if opts.tls then
    local ok, terr, tcode = tls.connect(flow, opts.tls, host)
    if not ok then return nil, terr, tcode end
  end
  local result = pack(xpcall(f, errors.with_traceback, flow))
  flow:close()
  flow:close_finished()
  if not result[1] then error(result[2], 0) end
  return unpack(result, 2, result.n)
end

return M
