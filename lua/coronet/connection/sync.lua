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
local drive = require "coronet.connection.drive"
require "coronet.socket"

local M = {}

local HAPPY_EYEBALLS_DELAY = 0.25

-- A blocking connection's methods (documented below, under its type).
local SyncConnection = {}
SyncConnection.__index = SyncConnection
M.SyncConnection = SyncConnection

local function check_timeout(opts, fn)
  if opts == nil then return false end
  if type(opts) ~= "table" then error(("coronet.connection.sync.%s: options must be a table"):format(fn), 3) end
  local timeout = opts.timeout
  if timeout == nil then return false end
  if not (type(timeout) == "number" and timeout >= 0) then
    error(("coronet.connection.sync.%s: option 'timeout' must be seconds >= 0"):format(fn), 3)
  end
  return timeout
end

local function check_connection(conn, fn)
  if getmetatable(conn) ~= SyncConnection then
    error(("coronet.connection.sync.%s: expected a connection from sync.connect, got %s"):format(fn, type(conn)), 3)
  end
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
  if type(host) ~= "string" then error("coronet.connection.sync.connect: host must be a string", 2) end
  if math.type(port) ~= "integer" or port < 0 or port > 65535 then
    error("coronet.connection.sync.connect: port must be an integer in 0..65535", 2)
  end
  return drive.call("sync.connect", connect, host, port, check_timeout(opts, "connect"))
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
  check_connection(self, "send")
  if type(data) ~= "string" then error("coronet.connection.sync.send: data must be a string, got " .. type(data), 2) end
  return drive.call("sync.send", send, self, data, check_timeout(opts, "send"))
end

--- Exactly `n` bytes, waiting for them.
-- @tparam integer n
-- @tparam[opt] table opts `timeout` (seconds; default none)
-- @return string, or `nil, err, code` ("closed" at EOF, "timeout")
function SyncConnection:receive(n, opts)
  check_connection(self, "receive")
  if math.type(n) ~= "integer" or n < 0 then error("coronet.connection.sync.receive: n must be an integer >= 0", 2) end
  local reader = self.reader
  return drive.call("sync.receive", reader.really_read, reader, n, check_timeout(opts, "receive"))
end

--- The next line, without its "\n" and one "\r" before it, waiting for it.
-- @tparam[opt] table opts `timeout` (seconds; default none)
-- @return string, or `nil, err, code`
function SyncConnection:receive_line(opts)
  check_connection(self, "receive_line")
  local reader = self.reader
  return drive.call("sync.receive_line", reader.read_line, reader, check_timeout(opts, "receive_line"))
end

local function close(conn)
  conn.sock:close()
  return conn.sock:close_finished()
end

--- Closes, waiting until what was sent has been flushed (at most 5 s) and
-- the descriptor is closed. Idempotent.
function SyncConnection:close()
  check_connection(self, "close")
  if self.closed then return end
  self.closed = true
  drive.call("sync.close", close, self)
end

--- The peer's address value.
function SyncConnection:remote_address()
  check_connection(self, "remote_address")
  return self.sock:getpeername()
end

function SyncConnection:__tostring()
  return ("coronet.connection.sync (%s%s)"):format(self.host, self.closed and ", closed" or "")
end

return M
