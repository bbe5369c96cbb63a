--- Procord connection sets, for servers that poll: a listening socket with
-- no accept loop of its own, `accept_into_set` to take what is pending, and
-- sets that drop their closed connections at each update. These functions
-- are `coronet.connection`'s too.
-- @module coronet.connection.set
local core = require "coronet.core"
local connection = require "coronet.connection"
local check = require "coronet.connection.check"
local net_server = require "coronet.net_server"
local drive = require "coronet.connection.drive"
local news = require "coronet.connection.news"

local internal = connection._internal

local M = {}

local MAX_ACCEPTS_PER_CALL = 256 -- bounds one call's work under a flood; the rest waits for the next

-- A set's methods (documented below, under its type).
local Set = {}
Set.__index = Set
Set.__name = "coronet.connection.set"
M.Set = Set

-- Checks argument n (default 1) of the public function `fn`, which calls this itself.
local function check_set(set, fn, n)
  if getmetatable(set) ~= Set then check.expected(fn, n or 1, "connection set", set, 1) end
  return set
end

--- Listens on `where` (an address value, or a port number for every IPv4
-- address) and returns a listening socket that accepts nothing by itself:
-- `accept_into_set` takes the clients waiting. The same object as
-- `coronet.net.listen` gives.
-- @param where an address value or a port
-- @tparam[opt] table opts `backlog`
-- @return listening socket, or `nil, err, code`
function M.listen(where, opts)
  if math.type(where) == "integer" and where >= 0 and where <= 65535 then
    where = core.address_ip("0.0.0.0", where)
  elseif not core.is_address(where) then
    check.expected("listen", 1, "address value or port (an integer in 0..65535)", where)
  end
  opts = check.options("listen", 2, opts)
  return net_server.listen(where, { backlog = opts.backlog })
end

--- A new empty set.
-- @treturn Set
function M.empty_set()
  return setmetatable({ members = {}, has = {}, epoch = 0, seen = 0 }, Set)
end

function Set:__len() return #self.members end

function Set:__tostring() return ("coronet.connection set (%d connections)"):format(#self.members) end

--- A mutable set of connections: `#set`, `set:update()`, `set:iter(f)`,
-- `for conn in set:each() do`.
-- @type Set

--- Updates every connection of the set (one pass of the loop, as
-- `conn:update()`), then removes those disconnected.
function Set:update()
  check_set(self, "update_set")
  drive.pass()
  local kept, has = {}, {}
  for _, conn in ipairs(self.members) do
    internal.take_snapshot(conn)
    if conn:alive() then
      kept[#kept + 1] = conn
      has[conn] = true
    end
  end
  self.members, self.has = kept, has
  news.mark_seen(self)
end

--- Calls `f(conn)` for every connection of the set (a snapshot: `f` may add or close connections).
-- @tparam function f
function Set:iter(f)
  check_set(self, "iter")
  if type(f) ~= "function" then check.expected("iter", 2, "function", f) end
  for _, conn in ipairs({ table.unpack(self.members) }) do f(conn) end
end

--- An iterator over a snapshot of the set's connections.
function Set:each()
  check_set(self, "each")
  local snapshot, i = { table.unpack(self.members) }, 0
  return function()
    i = i + 1
    return snapshot[i]
  end
end

--- Adds a connection to the set; one already in it stays listed once (a
-- set holds each connection once, as the seed's sets do).
-- @tparam Connection conn
function Set:add(conn)
  check_set(self, "add")
  if getmetatable(conn) ~= connection.Connection then check.expected("add", 2, "connection", conn) end
  if self.has[conn] then return end
  self.members[#self.members + 1] = conn
  self.has[conn] = true
  news.bump(self)
end

local function check_listening(listening)
  if getmetatable(listening) == net_server.Listening then
    if listening.serving then
      check.argument("accept_into_set", 1, "this listening socket is serving (net.run_server), its accept loop"
        .. " would compete for the clients", 1)
    end
    return listening
  end
  if type(listening) == "table" and type(listening.listening_on) == "function" then
    check.argument("accept_into_set", 1, "a coronet.tcp server accepts its clients itself (its accept loop"
      .. " would compete for them): listen with connection.listen instead", 1)
  end
  check.expected("accept_into_set", 1, "listening socket from connection.listen", listening, 1)
end

-- A client accepted earlier for a net.accept that gave up, else one taken now.
local function next_client(listening)
  local ready = table.remove(listening.ready, 1)
  if ready then return ready[1], ready[2] end
  return listening.core:try_accept()
end

-- Calls make_data(address) in a coroutine of its own, since accept_into_set
-- never yields: a make_data that waits (coronet.sleep, a deferred, a name
-- to resolve) would otherwise yield the caller's fiber, and one that calls
-- coroutine.yield would give its fiber a stray yield. In this coroutine,
-- which is no fiber, coronet's waiting calls raise, and a yield suspends
-- only it: both count as raising. The coroutine is closed either way (its
-- to-be-closed variables too).
local function call_alone(make_data, address)
  local co = coroutine.create(make_data)
  local ok, data = coroutine.resume(co, address)
  if ok and coroutine.status(co) == "dead" then return true, data end
  coroutine.close(co)
  if ok then return false, "make_data yielded (it must not wait: accept_into_set never yields)" end
  return false, data
end

-- make_data's verdict on a client: its data, or nil to refuse it. A raise
-- refuses it too, and is logged.
local function data_for(make_data, address)
  local ok, data = call_alone(make_data, address)
  if ok then return data end
  local shown_ok, shown = pcall(tostring, data) -- the error value's own __tostring may raise too
  core.log(("coronet.connection.accept_into_set: make_data raised for %s (client refused): %s")
    :format(tostring(address), shown_ok and tostring(shown) or "(an error value that cannot be shown)"))
  return nil
end

--- Accepting.
-- @section accepting

--- Accepts the clients waiting on `listening` and adds them to `set`; never
-- waits. `make_data(address)` gives each one's data; nil refuses the client
-- (its socket is closed), and so does a raise, which is logged through
-- `coronet.set_logger`. make_data runs in a coroutine of its own, where
-- nothing can wait: one that waits (`coronet.sleep`, a deferred, a name to
-- resolve) or yields counts as raising. At most 256 per call.
-- @param listening a listening socket from `connection.listen`
-- @tparam function make_data
-- @tparam Set set
-- @tparam[opt] table opts `timeout`, `ping`, buffer sizes, as for `connection.connect`
-- @treturn integer the number of connections added, or `nil, err, code`
function M.accept_into_set(listening, make_data, set, opts)
  check_listening(listening)
  if type(make_data) ~= "function" then check.expected("accept_into_set", 2, "function (make_data)", make_data) end
  check_set(set, "accept_into_set", 3)
  internal.options(opts, "accept_into_set", 4)
  if listening.closed then return nil, core.error("closed", "accept: the listening socket is closed"), "closed" end
  local added = 0
  for _ = 1, MAX_ACCEPTS_PER_CALL do
    local sock, address, code = next_client(listening)
    if not sock then
      if code and added == 0 then return nil, address, code end
      break
    end
    local data = data_for(make_data, address)
    if data == nil then
      sock:close()
    else
      set:add(connection.of_socket(sock, data, opts))
      added = added + 1
    end
  end
  return added
end

M.update_set = Set.update
M.iter = Set.iter
M.each = Set.each
M.add = Set.add

return M
