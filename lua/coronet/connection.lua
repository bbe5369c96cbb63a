--- coronet.connection: Procord connections, for programs that poll instead
-- of writing fibers (game loops, GUI hosts, scripts coming from LuaSocket).
-- A view over the foundation's sockets: the receive buffer is the socket
-- reader's buffer, sends go to its writer, connecting is `coronet.tcp`'s
-- connect and accepting is `coronet.net`'s listening socket. Nothing here
-- yields: every call returns at once, and the bytes move whenever the loop
-- runs (`conn:update()`, `connection.wait`, `coronet.step`, or inside
-- `coronet.run`).
--
-- A connection's states: `"connecting"`, `"connected"`, `"disconnecting"`
-- (only after `close_nicely`) and `"disconnected"`. Sending on a
-- disconnected connection is legal and does nothing; receiving after a
-- disconnection still returns what was buffered before it. Only a malformed
-- argument raises, as lauxlib does: "bad argument #1 to
-- 'coronet.connection.receive' (the length: an integer >= 0 expected, got
-- -1)" (counted from after the connection when called as a method). Counts
-- (lengths, offsets) are integers >= 0, a float with an integer value
-- counting as that integer; a timeout of false means none, `math.huge`
-- never.
--
-- Every method is also a function of this module taking the connection
-- first (`connection.send(conn, s)` is `conn:send(s)`). Sets, waiters and the
-- blocking interface are documented in `coronet.connection.set`,
-- `coronet.connection.waiter` and `coronet.connection.sync`; their functions
-- are this module's too.
-- @module coronet.connection
local core = require "coronet.core"
local errors = require "coronet.errors"
local check = require "coronet.connection.check"
local drive = require "coronet.connection.drive"
local net_dns = require "coronet.net_dns"
local news = require "coronet.connection.news"
local residue = require "coronet.connection.residue"
require "coronet.socket"

local M = {}

local DEFAULT_BUFFER_SIZE = 1024 * 1024
local HAPPY_EYEBALLS_DELAY = 0.25
local MAX_DESCRIPTOR = 0x7fffffff -- a C int

-- A Procord connection's methods (documented below, under its type).
local Connection = {}
Connection.__index = Connection
Connection.__name = "coronet.connection" -- the type misuse messages show
M.Connection = Connection

-- Checks `self` of a method (argument #1 of its module function).
local function check_connection(conn, fn)
  if getmetatable(conn) ~= Connection then check.expected(fn, 1, "connection", conn, 1) end
  return conn
end

local function check_size(opts, name, fn, n)
  local size = opts[name]
  if size == nil then return DEFAULT_BUFFER_SIZE end
  if math.type(size) ~= "integer" or size < 1 then check.option(fn, n, name, "a positive integer", size, 2) end
  return size
end

-- The options every way of making a connection shares (argument n of
-- `fn`, which calls this itself): timeout (false: none), ping and the two
-- buffer sizes.
local function connection_options(opts, fn, n)
  opts = check.options(fn, n, opts, 1)
  local timeout, ping = opts.timeout, opts.ping
  if timeout == false then timeout = nil end
  if timeout ~= nil and not (type(timeout) == "number" and timeout > 0) then -- math.huge: never, as for every timeout
    check.option(fn, n, "timeout", "seconds > 0 (or false for none)", timeout, 1)
  end
  if ping ~= nil and (type(ping) ~= "string" or ping == "") then
    check.option(fn, n, "ping", "a non-empty string", ping, 1)
  end
  return { timeout = timeout, ping = timeout and ping,
           receive_buffer_size = check_size(opts, "receive_buffer_size", fn, n),
           send_buffer_size = check_size(opts, "send_buffer_size", fn, n) }
end

-- Adds Procord's two fields to an error value: the operation that failed
-- and its argument (the host, or the peer's address).
local function with_op(err, op, arg)
  if type(err) == "table" then
    err.op, err.arg = op, arg
  end
  return err
end

local function new_connection(data, options, name)
  return setmetatable({
    data_ = data, options = options, name = name,
    live = "connecting", err = nil, code = nil,           -- what is true now
    status = "connecting", status_err = nil, status_code = nil, -- what the last update saw
    queue = {}, queued = 0,                               -- sends made while connecting
    epoch = 0, seen = 0, last_receive = core.now(), pinged = false,
  }, Connection)
end

-- Runs body(...) in a fiber of its own whose failure is logged, never
-- raised into the loop's user (a bug here must not end a host's program).
local function spawn_quiet(body, ...)
  return core.spawn(function(...)
    local ok, err = xpcall(body, debug.traceback, ...)
    if not ok then core.log("coronet.connection: internal error: " .. tostring(err)) end
  end, ...)
end

local function close_sockets(conn, how)
  for _, sock in ipairs(conn.sockets or {}) do
    if how == "abort" then sock:abort() else sock:close() end
  end
end

-- A connection the program dropped without closing it: its sockets close
-- (as a dropped socket's do). Its fiber holds it only weakly (`weak_ref`),
-- finds it gone and ends.
function Connection:__gc() close_sockets(self) end

local WEAK_VALUE = { __mode = "v" }

-- What a connection's fiber holds between two wake-ups instead of the
-- connection, so that a connection the program drops can be collected.
local function weak_ref(conn) return setmetatable({ conn = conn }, WEAK_VALUE) end

-- The one way into "disconnected": keeps what was received but not
-- consumed, closes the sockets and tells the waiters.
local function disconnect(conn, err, code, how)
  if conn.live == "disconnected" then return end
  conn.residue = conn.input and residue.new(conn.input:try_read()) or residue.empty
  conn.live, conn.err, conn.code = "disconnected", err, code
  conn.input, conn.output = nil, nil
  close_sockets(conn, how)
  news.bump(conn)
end

local function idle_error(conn)
  local err = errors.new("timeout", ("no data received from %s for %g s"):format(conn.name, conn.options.timeout),
    conn.remote)
  err.kind = "timeout" -- as every timeout error of coronet's
  return with_op(err, "idle", conn.name), "timeout"
end

-- Sends the ping unless the send buffer has no room for it (the peer is
-- then busy receiving what is already queued).
local function send_ping(conn)
  local writer, ping = conn.output, conn.options.ping
  if writer and writer:pending() + #ping <= conn.options.send_buffer_size then writer:write(ping) end
  conn.pinged = true
end

-- Seconds until the next ping or idle deadline, acting on the ones passed.
-- nil: nothing to wait for but bytes.
local function next_deadline(conn)
  local timeout = conn.options.timeout
  if not timeout then return nil end
  local now = core.now()
  if conn.input and conn.input:buffered() >= conn.input:capacity() then
    conn.last_receive = now -- reading is paused for the program, not the peer: not silence
  end
  local silent = now - conn.last_receive
  if silent >= timeout then
    disconnect(conn, idle_error(conn))
    return nil
  end
  -- no ping while disconnecting: what the program sent last must stay last
  if conn.options.ping and not conn.pinged and conn.live == "connected" then
    if silent >= timeout / 2 then
      send_ping(conn)
    else
      return timeout / 2 - silent
    end
  end
  return timeout - silent
end

-- The connection's one fiber, once connected: wakes at every read event
-- (without consuming: the program does) and at the ping and idle
-- deadlines. Any byte received restarts both clocks.
-- While it waits it holds the connection only through `ref` (weak).
local function watch(ref)
  while true do
    local conn = ref.conn
    if not conn or conn.live == "disconnected" then return end
    local wait_for = next_deadline(conn)
    if conn.live == "disconnected" then return end
    local input = conn.input
    conn = nil -- dropped by the program meanwhile, it may be collected
    if not input then
      if not wait_for then return end -- nothing to receive and no clock: nothing to do
      core.sleep(wait_for)
    else
      local ok, err, code = input:wait_activity(wait_for)
      conn = ref.conn
      if not conn then return end
      if ok then
        conn.last_receive, conn.pinged = core.now(), false
        news.bump(conn)
      elseif code ~= "timeout" and conn.live ~= "disconnected" then
        disconnect(conn, with_op(err, "read", conn.name), code)
      end
    end
  end
end

-- Flushes what is buffered, then closes; at the deadline closes anyway,
-- dropping the rest. A local close: no error.
local function finish_nicely(conn)
  local writer = conn.output
  local ok = not writer or writer:flush(conn.nice_timeout)
  disconnect(conn, nil, nil, not ok and "abort" or nil)
end

-- Attaches the sockets of a connection that is now connected, and sends what was queued meanwhile.
local function attach(conn, input_socket, output_socket)
  conn.sockets = { input_socket }
  if output_socket and output_socket ~= input_socket then conn.sockets[2] = output_socket end
  if not input_socket then conn.sockets[1] = output_socket end
  local size = { reader_buffer_size = conn.options.receive_buffer_size,
                 writer_buffer_size = conn.options.send_buffer_size }
  for _, sock in ipairs(conn.sockets) do sock:configure(size) end
  conn.input = input_socket and input_socket:reader()
  conn.output = output_socket and output_socket:writer()
  if conn.live == "connecting" then conn.live = "connected" end
  if conn.output and conn.queued > 0 then conn.output:write(conn.queue) end
  conn.queue, conn.queued = nil, 0
  conn.last_receive = core.now()
  news.bump(conn)
  if conn.live == "disconnecting" then spawn_quiet(finish_nicely, conn) end
end

local function connect_and_watch(ref, request)
  local sock, err, code = core.connect(request)
  local conn = ref.conn
  if not conn or conn.live == "disconnected" then -- closed (or dropped) while connecting
    if sock then sock:close() end
    return
  end
  if not sock then return disconnect(conn, with_op(err, "connect", conn.name), code) end
  conn.remote = sock:getpeername()
  attach(conn, sock, sock)
  conn = nil -- watch holds it weakly
  watch(ref)
end

--- Connects to `host` and `port`, and returns at once in state
-- `"connecting"`: DNS (on libuv's threadpool) and the connect (Happy
-- Eyeballs over the addresses found) proceed on the loop.
--
-- Options: `timeout` (seconds; false or nil: none; `math.huge`: never):
-- disconnect when nothing has been received for that long (the connect
-- counts: it fails with code `"timeout"`);
-- `ping` (a non-empty string, ignored without `timeout`): sent once the
-- connection has been silent for `timeout / 2`, at most once per silent
-- period; any byte received restarts both clocks. A receive buffer full
-- because the program does not consume is not silence. `receive_buffer_size`
-- (default 1 MiB): past it reading pauses until the program consumes;
-- `send_buffer_size` (default 1 MiB): past it `send` returns
-- `nil, err, "busy"`.
-- @tparam string host a name or an IP literal
-- @tparam integer port
-- @param data any value, given back by `conn:data()`
-- @tparam[opt] table opts `timeout`, `ping`, `receive_buffer_size`, `send_buffer_size`
-- @treturn Connection
function M.connect(host, port, data, opts)
  if type(host) ~= "string" then check.expected("connect", 1, "host name (string)", host) end
  if math.type(port) ~= "integer" or port < 0 or port > 65535 then
    check.expected("connect", 2, "port (an integer in 0..65535)", port)
  end
  local options = connection_options(opts, "connect", 4)
  local conn = new_connection(data, options, host)
  local request = { host = host, port = port, timeout = options.timeout, caller = "coronet.connection.connect",
                    happy_eyeballs_delay = HAPPY_EYEBALLS_DELAY }
  conn.fiber = spawn_quiet(connect_and_watch, weak_ref(conn), request)
  return conn
end

-- A connection made over sockets that are already connected: state
-- "connected" at once (at once in the snapshot too), and its fiber watching.
local function start(conn, input_socket, output_socket)
  attach(conn, input_socket, output_socket)
  conn.status = conn.live
  conn.fiber = spawn_quiet(watch, weak_ref(conn))
  return conn
end

--- A connection over a socket that is already connected (an accepted one,
-- say): state `"connected"` at once. `accept_into_set` makes its
-- connections with it.
-- @param sock a connected socket (from `coronet.tcp`, `coronet.net`...)
-- @param data any value, given back by `conn:data()`
-- @tparam[opt] table opts as for `connect`
-- @treturn Connection
function M.of_socket(sock, data, opts)
  local ok, getpeername = pcall(function() return sock.getpeername end) -- any socket class of coronet's
  if not (ok and type(getpeername) == "function") then check.expected("of_socket", 1, "connected socket", sock) end
  local options = connection_options(opts, "of_socket", 3)
  local remote = sock:getpeername()
  local conn = new_connection(data, options, tostring(remote))
  conn.remote = remote
  return start(conn, sock, sock)
end

-- Checks custom's option `name` (a descriptor or a Lua file) before anything is opened.
local function check_descriptor(opts, name)
  local fd = opts[name]
  if fd == nil or io.type(fd) == "file" then return end
  local n = type(fd) == "number" and math.tointeger(fd)
  if not n or n < 0 or n > MAX_DESCRIPTOR then
    check.option("custom", 1, name, "a descriptor (integer 0..2^31-1) or an open Lua file", fd, 1)
  end
end

local function open_descriptor(fd)
  if fd == nil then return nil end
  return core.open_descriptor(fd)
end

--- A connection over descriptors: integers or Lua file handles (`io.stdin`,
-- `io.stdout`, a handle from `io.popen`): pipes, a child process's stdio,
-- the process's own stdin/stdout (libuv pipe or tty handles), sockets.
-- coronet works on duplicates of the descriptors (`coronet.process.open_descriptor`):
-- closing the connection leaves the caller's open. Without `input` nothing
-- is ever received; without `output` sends are dropped. libuv sets the
-- descriptors non-blocking, and that flag is shared with the caller's
-- copies (a `print` to a stdout given as `output` may then fail with
-- EAGAIN): write through the connection. State `"connected"` at once.
-- @tparam table opts `input`, `output`, `remote_address` (an address value
-- for `conn:remote_address()`; default none), `data`, and `timeout`, `ping`, `receive_buffer_size`,
-- `send_buffer_size` as for `connect`
-- @treturn Connection, or `nil, err, code` for a descriptor libuv cannot
-- stream (`EINVAL`: a regular file...; `EBADF`: a closed descriptor)
function M.custom(opts)
  if type(opts) ~= "table" then check.expected("custom", 1, "options table", opts) end
  local options = connection_options(opts, "custom", 1)
  check_descriptor(opts, "input")
  check_descriptor(opts, "output")
  local remote = opts.remote_address
  if remote ~= nil and not core.is_address(remote) then
    check.option("custom", 1, "remote_address", "an address value", remote)
  end
  local input, err, code = open_descriptor(opts.input)
  if opts.input ~= nil and not input then return nil, err, code end
  local output = input
  if opts.output ~= opts.input then
    output, err, code = open_descriptor(opts.output)
    if opts.output ~= nil and not output then
      if input then input:close() end
      return nil, err, code
    end
    if output then output:reader():close() end -- the input side receives; this one only sends
  end
  local name = remote and tostring(remote) or ("descriptors %s/%s"):format(tostring(opts.input), tostring(opts.output))
  local conn = new_connection(opts.data, options, name)
  conn.remote = remote
  return start(conn, input, output)
end

--- Starts a program and returns a connection to it: what is sent goes to
-- its stdin, what it writes to its stdout is received (`coronet.process.spawn`
-- makes the pipes). Closing the connection closes both pipes (the child
-- reads EOF); the child is not killed: `conn:process()` gives the process
-- (`pid`, `kill`, `exit_status`, `wait`). The child's own EOF on stdout
-- (it exited, or closed it) is a disconnection with code `"closed"`, op `"read"`.
-- @tparam string file a path, or a name looked up in PATH
-- @tparam[opt] {string,...} args the arguments after the program's name
-- @tparam[opt] table opts `data`, `env`, `cwd` (as for `coronet.process.spawn`),
-- and `timeout`, `ping`, buffer sizes as for `connect`
-- @treturn Connection, or `nil, err, code` (`ENOENT` for a program not found)
function M.spawn(file, args, opts)
  if type(file) ~= "string" then check.expected("spawn", 1, "program (string)", file) end
  if args ~= nil and type(args) ~= "table" then check.expected("spawn", 2, "array of arguments", args) end
  opts = check.options("spawn", 3, opts)
  local options = connection_options(opts, "spawn", 3)
  local process, stdin_socket, stdout_socket = core.spawn_process(file, args, { env = opts.env, cwd = opts.cwd })
  if not process then return nil, stdin_socket, stdout_socket end
  local conn = new_connection(opts.data, options, file)
  conn.process_ = process
  return start(conn, stdout_socket, stdin_socket)
end

--- A Procord connection: every method is also a function of the module
-- taking the connection first.
-- @type Connection

--- The child process of a connection made by `spawn`, else nil.
function Connection:process()
  check_connection(self, "process")
  return self.process_
end

local function take_snapshot(conn)
  conn.status, conn.status_err, conn.status_code = conn.live, conn.err, conn.code
  news.mark_seen(conn)
end

--- Moves the bytes and applies the timeouts (one non-blocking pass of the
-- loop), then takes the state snapshot `state()` reports. Inside a running
-- loop (inside `coronet.run`, a fiber, or a host's `coronet.step`) it does
-- not run the loop again (libuv's loop is not re-entrant): everything
-- progresses anyway, and it only takes the snapshot. A no-op on a
-- disconnected connection.
function Connection:update()
  check_connection(self, "update")
  drive.pass()
  take_snapshot(self)
end

--- The state at the last update: `"connecting"`, `"connected"`,
-- `"disconnecting"` or `"disconnected"`; for a disconnection, then the
-- error value and its code, or nothing for a local close (`close`, a
-- completed `close_nicely`). The error names the failing operation as
-- `err.op` (`"connect"`, `"read"`, `"write"`, `"idle"`) and its argument
-- as `err.arg` (the host, or the peer's address): the peer's EOF is code
-- `"closed"` with op `"read"`, the idle timeout code `"timeout"` with op
-- `"idle"`, a refused connect `"ECONNREFUSED"` (kind `"refused"`).
-- @treturn string state
-- @return error value, code
function Connection:state()
  check_connection(self, "state")
  if self.status_err == nil then return self.status end -- nothing more: as the issue says
  return self.status, self.status_err, self.status_code
end

--- True unless the state (at the last update) is `"disconnected"`.
function Connection:alive()
  check_connection(self, "alive")
  return self.status ~= "disconnected"
end

local function busy_error(conn, size)
  local limit = conn.options.send_buffer_size
  if size > limit then -- never sent as it is: the program must split it (or ask for a larger buffer)
    return errors.new("busy", ("%d bytes can never fit in the send buffer of %s (send_buffer_size %d bytes):"
      .. " send them in parts"):format(size, conn.name, limit)), "busy"
  end
  return errors.new("busy", ("send buffer of %s full (%d bytes): the peer reads slower than the program sends")
    :format(conn.name, limit)), "busy"
end

--- Buffers `data` for sending and returns true; never waits. Allowed while
-- connecting (sent once connected); ignored (true) once disconnecting or
-- disconnected, and on a connection without output. Past
-- `send_buffer_size` bytes waiting, returns `nil, err, "busy"` without
-- taking the data: the program produces faster than the peer reads.
-- @tparam string data
-- @return true, or `nil, err, "busy"`
function Connection:send(data)
  check_connection(self, "send")
  if type(data) ~= "string" then check.expected("send", 2, "string", data) end
  local live = self.live
  if live == "disconnected" or live == "disconnecting" then return true end
  local connecting = live == "connecting"
  if not connecting and not self.output then return true end
  local pending = connecting and self.queued or self.output:pending()
  if pending + #data > self.options.send_buffer_size then return nil, busy_error(self, #data) end
  if connecting then
    self.queue[#self.queue + 1] = data
    self.queued = self.queued + #data
    return true
  end
  local ok, err, code = self.output:write(data)
  if not ok then disconnect(self, with_op(err, "write", self.name), code) end
  return true
end

-- The receive buffer: the reader while connected, what it held once disconnected.
local function input_of(conn)
  return conn.input or conn.residue or residue.empty
end

--- Exactly `n` bytes from the receive buffer, or nil if fewer are buffered.
-- @tparam integer n
-- @treturn ?string
function Connection:receive(n)
  check_connection(self, "receive")
  n = check.count("receive", 2, n, "the length")
  return input_of(self):try_really_read(n)
end

--- `n` bytes starting at `offset` (0-based), left in the buffer; nil unless
-- `offset + n` bytes are buffered. A length of 0 gives "".
-- @tparam integer offset
-- @tparam integer n
-- @treturn ?string
function Connection:receive_poll(offset, n)
  check_connection(self, "receive_poll")
  offset = check.count("receive_poll", 2, offset, "the offset")
  n = check.count("receive_poll", 3, n, "the length")
  local input = input_of(self)
  if offset > input:buffered() - n then return nil end -- offset + n past the end (without overflowing)
  return input:peek_at(offset, n)
end

--- At most `n` bytes starting at `offset`, left in the buffer; "" at or past the end.
-- @tparam integer offset
-- @tparam integer n
-- @treturn string
function Connection:receive_poll_part(offset, n)
  check_connection(self, "receive_poll_part")
  offset = check.count("receive_poll_part", 2, offset, "the offset")
  n = check.count("receive_poll_part", 3, n, "the length")
  return input_of(self):peek_at(offset, n)
end

--- Everything buffered, possibly "".
-- @treturn string
function Connection:receive_all()
  check_connection(self, "receive_all")
  return input_of(self):try_read()
end

--- At most `n` bytes, possibly "".
-- @tparam integer n
-- @treturn string
function Connection:receive_part(n)
  check_connection(self, "receive_part")
  n = check.count("receive_part", 2, n, "the length")
  return input_of(self):try_read(n)
end

--- Drops `n` bytes (with fewer buffered: all of them) and returns how many were dropped.
-- @tparam integer n
-- @treturn integer
function Connection:receive_forget(n)
  check_connection(self, "receive_forget")
  n = check.count("receive_forget", 2, n, "the length")
  return input_of(self):discard(n)
end

--- The next line, without its "\n" and one "\r" before it; nil until a whole
-- line is buffered. A receive buffer full without a newline gives
-- `nil, err, "line_too_long"` (then `receive_all` takes the bytes).
-- @treturn ?string
function Connection:receive_line()
  check_connection(self, "receive_line")
  return input_of(self):try_read_line()
end

--- Bytes in the receive buffer.
-- @treturn integer
function Connection:receive_buffer_length()
  check_connection(self, "receive_buffer_length")
  return input_of(self):buffered()
end

--- True when the receive buffer is empty.
-- @treturn boolean
function Connection:receive_buffer_empty()
  check_connection(self, "receive_buffer_empty")
  return input_of(self):buffered() == 0
end

--- Closes at once (state `"disconnected"` with no error, at once and in the
-- snapshot); what was sent but not yet taken by the kernel is still flushed
-- in the background, bounded by 5 s. Idempotent.
function Connection:close()
  check_connection(self, "close")
  if self.live == "disconnected" then return end
  disconnect(self)
  self.status, self.status_err, self.status_code = self.live, nil, nil
  if self.fiber then self.fiber:cancel() end
end

--- Sends what is buffered, then closes (state `"disconnecting"` until then,
-- `"disconnected"` with no error after); with `timeout`, closes anyway once
-- it has passed, dropping what is left. The only way into `"disconnecting"`.
-- @tparam[opt] table opts `timeout` (seconds)
function Connection:close_nicely(opts)
  check_connection(self, "close_nicely")
  local timeout = check.timeout("close_nicely", 2, check.options("close_nicely", 2, opts))
  if self.live ~= "connecting" and self.live ~= "connected" then return end
  local was_connecting = self.live == "connecting"
  self.live, self.nice_timeout = "disconnecting", timeout
  self.status = self.live
  news.bump(self)
  if not was_connecting then spawn_quiet(finish_nicely, self) end
end

--- The peer's address value; nil while connecting, and for a connection
-- over descriptors without `remote_address` or to a child process.
function Connection:remote_address()
  check_connection(self, "remote_address")
  return self.remote
end

--- The value given when the connection was made.
function Connection:data()
  check_connection(self, "data")
  return self.data_
end

--- The `timeout` option (seconds), or nil.
function Connection:timeout()
  check_connection(self, "timeout")
  return self.options.timeout
end

-- A connection in a `<close>` variable closes when its scope ends (close never waits).
function Connection:__close() self:close() end

function Connection:__tostring()
  return ("coronet.connection (%s, %s)"):format(self.name, self.live)
end

-- For the set module: one pass for a whole set, then each snapshot.
M._internal = { take_snapshot = take_snapshot, options = connection_options }

local function resolve_first(name)
  local addresses, err, code = net_dns.getaddrinfo_stream(name)
  if not addresses then return nil, err, code end
  if #addresses == 0 then
    return nil, errors.new("no_matching_addresses", name .. ": no address"), "no_matching_addresses"
  end
  return addresses[1]
end

--- Addresses.
-- @section addresses

--- An address value (port 0) from an IPv4 or IPv6 literal or a DNS name.
-- A name is resolved on libuv's threadpool while the loop keeps running:
-- outside any fiber this call runs the loop until the answer; inside a
-- fiber it yields. The first address the resolver gives is taken.
-- @tparam string name
-- @return address value, or `nil, err, code` (`EAI_NONAME`...)
function M.make_address(name)
  if type(name) ~= "string" then check.expected("make_address", 1, "string", name) end
  local ok, address = pcall(core.address_ip, name, 0)
  if ok then return address end
  if drive.may_run() then return drive.call("make_address", resolve_first, name) end
  drive.check_can_wait("make_address")
  return resolve_first(name)
end

for name, method in pairs(Connection) do
  if name:sub(1, 2) ~= "__" and type(method) == "function" then M[name] = method end
end

-- Sets, waiters and the blocking interface load this module: it is in
-- package.loaded before they are required, and their functions are its own.
package.loaded["coronet.connection"] = M
for _, module in ipairs { "coronet.connection.set", "coronet.connection.waiter" } do
  for name, value in pairs(require(module)) do M[name] = value end
end
M.sync = require "coronet.connection.sync"

return M
