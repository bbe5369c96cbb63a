--- Procord waiters: what a polling program waits on between two updates.
-- A waiter names connections, sets, listening sockets and descriptors of
-- the program's own; `connection.wait(waiter)` runs the loop until one of
-- them has news (or, inside a fiber, yields until then), and
-- `instanciate_waiter` gives the descriptors a host's own select/poll must
-- watch instead. These functions are `coronet.connection`'s too.
-- @module coronet.connection.waiter
local core = require "coronet.core"
local connection = require "coronet.connection"
local check = require "coronet.connection.check"
local drive = require "coronet.connection.drive"
local net_server = require "coronet.net_server"
local news = require "coronet.connection.news"
local set_module = require "coronet.connection.set"

local M = {}

-- What the waiter functions below make: a description of what to wait on.
local Waiter = {}
Waiter.__index = Waiter
Waiter.__name = "coronet.connection.waiter"
M.Waiter = Waiter

local function new_waiter(fields) return setmetatable(fields, Waiter) end

local function check_waiter(waiter, fn)
  if getmetatable(waiter) ~= Waiter then check.expected(fn, 1, "waiter", waiter, 1) end
  return waiter
end

--- Waits until it is worth calling `conn:update()`: bytes or the end of
-- the input arrived, the connect finished, the connection was lost. A
-- disconnected connection's waiter is always ready.
-- @tparam Connection conn
-- @treturn Waiter
function M.waiter(conn)
  if getmetatable(conn) ~= connection.Connection then check.expected("waiter", 1, "connection", conn) end
  return new_waiter { conn = conn }
end

--- Waits until a client waits to be accepted (`accept_into_set`), or the socket closes.
-- @param listening a listening socket from `connection.listen`
-- @treturn Waiter
function M.waiter_of_listening_socket(listening)
  if getmetatable(listening) ~= net_server.Listening then
    check.expected("waiter_of_listening_socket", 1, "listening socket from connection.listen", listening)
  end
  return new_waiter { listening = listening }
end

--- Waits as the waiters of all the set's connections would, as the set grows and shrinks.
-- @tparam Set set
-- @treturn Waiter
function M.waiter_of_set(set)
  if getmetatable(set) ~= set_module.Set then check.expected("waiter_of_set", 1, "connection set", set) end
  return new_waiter { set = set }
end

local LETTER = { read = "r", write = "w", except = "e" }

-- Checks waiter_custom's option `field`, an array of descriptors, and
-- returns a copy of it (a descriptor the program adds later is not checked).
local function check_fds(list, field)
  if list == nil then return {} end
  if type(list) ~= "table" then check.option("waiter_custom", 1, field, "an array of descriptors", list, 1) end
  local copy = {}
  for i, fd in ipairs(list) do
    if math.type(fd) ~= "integer" or fd < 0 then
      check.argument("waiter_custom", 1, ("option '%s': %s[%d]: a descriptor (integer >= 0) expected, got %s")
        :format(field, field, i, check.shown(fd)), 1)
    end
    if fd == core.backend_fd() then
      check.argument("waiter_custom", 1, ("option '%s': descriptor %d is coronet's loop descriptor (backend_fd):"
        .. " instanciate_waiter gives it; a waiter waits on the loop anyway"):format(field, fd), 1)
    end
    if core.is_watched(fd) then
      check.argument("waiter_custom", 1, ("option '%s': descriptor %d is watched by coronet already (libuv allows"
        .. " one watcher per descriptor): wait on its connection instead"):format(field, fd), 1)
    end
    copy[i] = fd
  end
  return copy
end

--- Waits until one of the program's own descriptors is ready: readable
-- (`read`), writable (`write`) or with an exceptional condition (`except`).
-- A descriptor coronet already watches (a socket of a connection, a
-- listening socket) is refused: libuv allows one watcher per descriptor.
-- @tparam table fds `read`, `write`, `except`: arrays of integers
-- @treturn Waiter
function M.waiter_custom(fds)
  if type(fds) ~= "table" then check.expected("waiter_custom", 1, "table of descriptor arrays", fds) end
  return new_waiter { fds = { read = check_fds(fds.read, "read"), write = check_fds(fds.write, "write"),
                              except = check_fds(fds.except, "except") } }
end

--- Waits until one of the waiters in `list` would stop waiting.
-- @tparam table list an array of waiters
-- @treturn Waiter
function M.waiter_of_list(list)
  if type(list) ~= "table" then check.expected("waiter_of_list", 1, "array of waiters", list) end
  for i, waiter in ipairs(list) do
    if getmetatable(waiter) ~= Waiter then
      check.argument("waiter_of_list", 1, ("list[%d]: waiter expected, got %s"):format(i, check.shown(waiter)))
    end
  end
  return new_waiter { list = { table.unpack(list) } }
end

-- What a waiter stands for, now (a set's members change): objects with
-- news counters, listening sockets, and descriptors with the letters of
-- their events.
local function collect(waiter, acc)
  acc = acc or { objects = {}, listenings = {}, fds = {}, fd_order = {} }
  if waiter.conn then
    acc.objects[#acc.objects + 1] = waiter.conn
  elseif waiter.set then
    acc.objects[#acc.objects + 1] = waiter.set
    for _, conn in ipairs(waiter.set.members) do acc.objects[#acc.objects + 1] = conn end
  elseif waiter.listening then
    acc.listenings[#acc.listenings + 1] = waiter.listening
  elseif waiter.fds then
    for field, letter in pairs(LETTER) do
      for _, fd in ipairs(waiter.fds[field]) do
        if not acc.fds[fd] then acc.fd_order[#acc.fd_order + 1] = fd end
        acc.fds[fd] = (acc.fds[fd] or "") .. letter
      end
    end
  else
    for _, inner in ipairs(waiter.list) do collect(inner, acc) end
  end
  return acc
end

local function ready(acc)
  for _, obj in ipairs(acc.objects) do
    if news.pending(obj) or obj.live == "disconnected" then return true end
  end
  for _, listening in ipairs(acc.listenings) do
    if listening.closed or #listening.ready > 0 then return true end
  end
  return false
end

-- Fibers that wait on the loop's side for the listening sockets and the
-- descriptors, calling `signal` when one fires; cancelled by the caller.
local function start_watchers(acc, signal)
  local fibers = {}
  local function watch(wait, ...)
    fibers[#fibers + 1] = core.spawn(function(...)
      local ok, _, code = wait(...)
      if ok or code ~= "cancelled" then signal() end
    end, ...)
  end
  for _, listening in ipairs(acc.listenings) do
    watch(function() return listening.core:wait_pending() end)
  end
  for _, fd in ipairs(acc.fd_order) do
    watch(function()
      local ok, err, code = core.poll_wait(fd, acc.fds[fd])
      if not ok and code ~= "cancelled" then acc.failure = err end -- not open, not pollable: raised by wait
      return ok, err, code
    end)
  end
  return fibers
end

-- wait's options (argument #2 of `fn`, which calls this itself): the timeout, nil for none.
local function check_wait_opts(opts, fn)
  local timeout = check.timeout(fn, 2, check.options(fn, 2, opts, 1), 1)
  return timeout
end

local function wait(waiter, timeout)
  local acc = collect(waiter)
  if ready(acc) then return true end
  local happened = false
  local wake = core.current() and require("coronet.deferred").ivar()
  local function signal()
    happened = true
    if wake and not wake.filled then wake:fill(true) end
    if not wake then core.stop_pass() end -- the driving loop checks `happened` now
  end
  local function on_news() if ready(acc) then signal() end end
  news.listen(on_news)
  local watchers = start_watchers(acc, signal)
  local ok, err = pcall(function()
    if wake then
      wake.deferred:wait(timeout)
    else
      drive.until_done(function() return happened end, timeout)
    end
  end)
  news.unlisten(on_news)
  for _, fiber in ipairs(watchers) do fiber:cancel() end
  if not ok then error(err, 0) end
  if acc.failure then error("coronet.connection.wait: " .. tostring(acc.failure), 3) end -- 3: wait's caller
  return happened
end

--- Waits until something happens to what `waiter` names: returns true,
-- or false once `timeout` seconds have passed. News that came since the
-- last `update` of a connection or set counts: the wait then returns at
-- once. Outside any fiber it runs the loop until then (returning false at
-- once if the loop has nothing left that could make news); inside a fiber
-- it yields instead. A descriptor of `waiter_custom` that is not open or
-- cannot be polled (a regular file) raises, naming it.
-- @tparam Waiter waiter
-- @tparam[opt] table opts `timeout` (seconds)
-- @treturn boolean
function M.wait(waiter, opts)
  check_waiter(waiter, "wait")
  drive.check_can_wait("wait")
  local happened = wait(waiter, check_wait_opts(opts, "wait")) -- not a tail call: wait's errors point at our caller
  return happened
end

--- `wait`, ignoring the result (the seed's `wait'`).
function M.wait_(waiter, opts)
  check_waiter(waiter, "wait_")
  drive.check_can_wait("wait_")
  wait(waiter, check_wait_opts(opts, "wait_"))
end

local function append_unique(list, fd)
  for _, known in ipairs(list) do
    if known == fd then return end
  end
  list[#list + 1] = fd
end

--- The descriptors a host's own select/poll must watch for `waiter`, as
-- three arrays: read, write, except. The read array holds coronet's loop
-- descriptor (`coronet.backend_fd()`), which is readable whenever the loop
-- has I/O to do; use `coronet.backend_timeout()` as the poll's timeout
-- (timers have no descriptor), then call `update`. Listening sockets are
-- in the read and except arrays (coronet does not watch them between
-- accepts), the program's own descriptors where `waiter_custom` put them.
-- @tparam Waiter waiter
-- @treturn table read, table write, table except
function M.instanciate_waiter(waiter)
  check_waiter(waiter, "instanciate_waiter")
  local acc = collect(waiter)
  local read, write, except = { core.backend_fd() }, {}, {}
  for _, listening in ipairs(acc.listenings) do
    local fd = listening.core:fileno()
    if fd then
      append_unique(read, fd)
      append_unique(except, fd)
    end
  end
  for _, fd in ipairs(acc.fd_order) do
    local letters = acc.fds[fd]
    if letters:find("r", 1, true) then append_unique(read, fd) end
    if letters:find("w", 1, true) then append_unique(write, fd) end
    if letters:find("e", 1, true) then append_unique(except, fd) end
  end
  return read, write, except
end

return M
