--- coronet.net's datagram (UDP) sockets, over the core's udp.c. Receiving
-- never allocates per datagram beyond the result string: the datagram is
-- read into the loop's read scratch and copied once, into that string.
-- One fiber may wait in `recv` and one in `send` at a time; a second gets
-- `nil, err, "busy"`. Methods are also module functions taking the socket
-- first (`net.send(sock, addr, data)`, `net.recv(sock, maxlen)`).
-- @module coronet.net_datagram
local core = require "coronet.core"
local errors = require "coronet.errors"

local M = {}

local Datagram = core.methods.datagram_socket

local families = { udp4 = "inet", udp6 = "inet6" }

--- A new datagram socket. With an address it is bound there (port 0: the
-- kernel picks one; `getsockname` tells which); with `"udp4"` or `"udp6"`
-- it is unbound, and the kernel binds it at its first send or recv.
-- @param addr an IP address value (`coronet.address`), `"udp4"` or `"udp6"`
-- @tparam[opt] table opts `sw` (a switch: the socket is attached to it and
-- closed at its end), `reuse_addr` (SO_REUSEADDR), `reuse_port` (SO_REUSEPORT,
-- set before bind)
-- @return the socket, or `nil, err, code` (a failed bind, e.g. `EADDRINUSE`)
function M.datagram_socket(addr, opts)
  if opts ~= nil and type(opts) ~= "table" then errors._typeerror(2, "net.datagram_socket", "table of options", opts) end
  opts = opts or {}
  if opts.sw ~= nil and (type(opts.sw) ~= "table" or type(opts.sw.attach) ~= "function") then
    error("net.datagram_socket: option 'sw' must be a switch", 2)
  end
  local target = families[addr]
  if not target and not core.is_address(addr) then
    errors._typeerror(1, "net.datagram_socket", 'address value, "udp4" or "udp6"', addr)
  end
  local sock, err, code = core.udp_socket(target or addr, opts.reuse_addr, opts.reuse_port)
  if not sock then return nil, err, code end
  if opts.sw then opts.sw:attach(sock) end
  return sock
end

--- A datagram socket.
-- @type DatagramSocket

--- Sends one datagram to `addr`. Returns at once unless the socket's send
-- buffer is full (then it waits for the kernel to take the datagram), so
-- call it in a fiber, as every waiting call.
-- A datagram over 65507 bytes (IPv4) or 65527 bytes (IPv6) fails with
-- `EMSGSIZE`; an address of the other family (or a unix one) with
-- `EAFNOSUPPORT`; after close with `closed`.
-- @function send
-- @param addr an address value of the socket's family
-- @param data a string, or an array of strings sent as one datagram
-- @return true, or `nil, err, code`
M.send = Datagram.send

--- Waits for one datagram. A datagram longer than `maxlen` is cut to
-- `maxlen` bytes and `truncated` is true (the rest is lost, as UDP does);
-- an empty datagram gives `""`. `maxlen < 1` raises. Closing the socket
-- ends the wait with `nil, err, "closed"`.
-- @function recv
-- @tparam[opt=65536] integer maxlen
-- @tparam[opt] table opts `timeout` (seconds: then `nil, err, "timeout"`)
-- @treturn string data
-- @return from, the sender's address
-- @treturn boolean truncated; or `nil, err, code`
M.recv = Datagram.recv

--- The bound address (`nil, err, code` once closed).
-- @function getsockname

--- Starts closing the socket; never waits. Idempotent.
-- @function close

--- Waits until the socket's descriptor is closed.
-- @function close_finished
-- @tparam[opt] number timeout seconds
-- @return true, or `nil, err, code`

--- True once closing has started.
-- @function is_closed

--- The methods as functions of the module, taking the socket first.
-- @section functions

--- `sock:send(addr, data)` as a function: `net.send(sock, addr, data)`.
-- @function send

--- `sock:recv([maxlen][, opts])` as a function: `net.recv(sock, ...)`.
-- @function recv

return M
