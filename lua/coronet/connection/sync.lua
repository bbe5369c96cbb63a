--- The blocking interface (Procord's `Sync`): plain calls for a script that
-- never uses coroutines, as LuaSocket's are. Each call runs the loop until
-- it completes (other connections and fibers progress meanwhile) and
-- raises if called inside a running loop (inside `coronet.run`, a fiber or
-- a host's `coronet.step`): there, use `coronet.tcp` or `coronet.connection`.
-- A view over the foundation's sockets and their reader and writer.
--
-- Failures are returned as `nil, err, code`; a timeout returns
-- `nil, err, "timeout"` and leaves the connection usable, the bytes already
-- received still buffered.
-- @module coronet.connection.sync
local core = require "coronet.core"
local check = require "coronet.connection.check"
local drive = require "coronet.connection.drive"
require "coronet.socket"

local M = {}

local HAPPY_EYEBALLS_DELAY = 0.25

-- A blocking connection's methods (documented below, under its type).
local SyncConnection = {}
SyncConnection.__index = SyncConnection
SyncConnection.__name = "coronet.connection.sync"
M.SyncConnection = SyncConnection

-- The timeout of the options at argument n of `fn` (which calls this
-- itself): seconds, or false for none.
local function check_timeout(opts, fn, n)
  local timeout = check.timeout(fn, n, check.options(fn, n, opts, 1), 1)
  return timeout or false
end

local function check_connection(conn, fn)
  if getmetatable(conn) ~= SyncConnection then check.expected(fn, 1, "connection from sync.connect", conn, 1) end
  return conn
end

local function connect(host, port, timeout)
  local sock, err, code = core.connect { host = host, port = port, timeout = timeout or nil,
                                         happy_eyeballs_delay = HAPPY_EYEBALLS_DELAY,
                                         caller = "coronet.connection.sync.connect" }
  if not sock then
    err.op, err.arg = "connect", host
    return nil, err, code
  end
  return setmetatable({ sock = sock, reader = sock:reader(), writer = sock:writer(), host = host }, SyncConnection)
end

--- Connects, waiting until connected or failed.
-- @tparam string host a name or an IP literal
-- @tparam integer port
-- @tparam[opt] table opts `timeout` (seconds; default none)
-- @treturn SyncConnection, or `nil, err, code`
function M.connect(host, port, opts)
  if type(host) ~= "string" then check.expected("sync.connect", 1, "host name (string)", host) end
  if math.type(port) ~= "integer" or port < 0 or port > 65535 then
    check.expected("sync.connect", 2, "port (an integer in 0..65535)", port)
  end
  return drive.call("sync.connect", connect, host, port, check_timeout(opts, "sync.connect", 3))
end

local function send(conn, data, timeout)
  local ok, err, code = conn.writer:write(data)
  if not ok then return nil, err, code end
  return conn.writer:flush(timeout)
end

--- A blocking connection, from `sync.connect`.
-- @type SyncConnection

--- Sends `data` and waits until the kernel has taken it.
-- @tparam string data
-- @tparam[opt] table opts `timeout` (seconds; default none)
-- @return true, or `nil, err, code`
function SyncConnection:send(data, opts)
  check_connection(self, "sync.send")
  if type(data) ~= "string" then check.expected("sync.send", 2, "string", data) end
  return drive.call("sync.send", send, self, data, check_timeout(opts, "sync.send", 3))
end

--- Exactly `n` bytes, waiting for them.
-- @tparam integer n
-- @tparam[opt] table opts `timeout` (seconds; default none)
-- @return string, or `nil, err, code` ("closed" at EOF, "timeout")
function SyncConnection:receive(n, opts)
  check_connection(self, "sync.receive")
  n = check.count("sync.receive", 2, n, "the length")
  local reader = self.reader
  return drive.call("sync.receive", reader.really_read, reader, n, check_timeout(opts, "sync.receive", 3))
end

--- The next line, without its "\n" and one "\r" before it, waiting for it.
-- @tparam[opt] table opts `timeout` (seconds; default none)
-- @return string, or `nil, err, code`
function SyncConnection:receive_line(opts)
  check_connection(self, "sync.receive_line")
  local reader = self.reader
  return drive.call("sync.receive_line", reader.read_line, reader, check_timeout(opts, "sync.receive_line", 2))
end

local function close(conn)
  conn.sock:close()
  return conn.sock:close_finished()
end

--- Closes, waiting until what was sent has been flushed (at most 5 s) and
-- the descriptor is closed. Idempotent.
function SyncConnection:close()
  check_connection(self, "sync.close")
  if self.closed then return end
  self.closed = true
  drive.call("sync.close", close, self)
end

--- The peer's address value.
function SyncConnection:remote_address()
  check_connection(self, "sync.remote_address")
  return self.sock:getpeername()
end

function SyncConnection:__tostring()
  return ("coronet.connection.sync (%s%s)"):format(self.host, self.closed and ", closed" or "")
end

for name, method in pairs(SyncConnection) do
  if name:sub(1, 2) ~= "__" then M[name] = method end
end

return M
