-- redis_lite.lua PORT: a Redis-protocol key-value server in memory: PING,
-- ECHO, SET, GET, DEL, EXISTS, CONFIG GET (enough for redis-cli and
-- redis-benchmark), QUIT. Commands come as RESP arrays of bulk strings or as
-- inline commands (words on a line). A pipelined batch is drained from what
-- is already buffered with the non-waiting reads (try_read_line, and
-- try_really_read taking a bulk string and its "\r\n" in one call): no
-- yield per command, and the replies of one batch leave in one system call.
-- A read waits only when a command is incomplete.
-- Serves until SIGTERM or SIGINT (Ctrl-C); port 0 picks a free port. Finds the module built in
-- the checkout by itself.
local root = (arg[0]:match("^(.*)/examples/[^/]*$") or ".")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local coronet = require "coronet"
local tcp = coronet.tcp
local reader_fns, writer_fns = require "coronet.reader", require "coronet.writer"

local port = tonumber(arg[1] or "6379")
local MAX_ARGS, MAX_BULK = 1024 * 1024, 512 * 1024 * 1024

local store = {}
-- What CONFIG GET reports: redis-benchmark asks for these.
local config = { save = "", appendonly = "no" }

-- The calls made per command, as locals: the readers' and writers' methods
-- are also functions of their modules (reader.try_read_line(r) is
-- r:try_read_line()), and calling them so skips the method lookup per call.
local byte, sub = string.byte, string.sub
local try_read_line, try_really_read = reader_fns.try_read_line, reader_fns.try_really_read
local write = writer_fns.write

-- A bulk string of n bytes and its "\r\n": buffered (both in one call), or
-- waited for.
local function next_bulk(reader, n)
  local data, crlf = try_really_read(reader, n, 2)
  if not data then
    local err, code
    data, err, code = reader:really_read(n)
    if not data then return nil, err, code end
    crlf, err, code = reader:really_read(2)
    if not crlf then return nil, err, code end
  end
  if crlf ~= "\r\n" then return nil, "protocol error: no CRLF after a bulk string", "protocol" end
  return data
end

-- Reads the next command into args[1..n] and returns n (0 for an empty
-- inline line), or nil, err, code. One args table serves every command of
-- a connection: no table is made per command. Each line is taken from the
-- buffer if it is whole there, else waited for.
local function read_command(reader, args)
  local line, err, code = try_read_line(reader)
  if not line then
    line, err, code = reader:read_line()
    if not line then return nil, err, code end
  end
  if byte(line, 1) ~= 42 then -- not "*": an inline command
    local n = 0
    for word in line:gmatch("%S+") do
      n = n + 1
      args[n] = word
    end
    return n
  end
  local count = tonumber(sub(line, 2), 10) -- base 10 takes integers only
  if not count or count > MAX_ARGS then return nil, "protocol error: bad array length", "protocol" end
  for i = 1, count do
    local header = try_read_line(reader)
    if not header then
      header, err, code = reader:read_line()
      if not header then return nil, err, code end
    end
    local n = byte(header, 1) == 36 and tonumber(sub(header, 2), 10) -- "$n"
    if not n or n < 0 or n > MAX_BULK then return nil, "protocol error: bad bulk length", "protocol" end
    args[i], err, code = next_bulk(reader, n)
    if not args[i] then return nil, err, code end
  end
  return count > 0 and count or 0
end

local function bulk(writer, s)
  if s == nil then return write(writer, "$-1\r\n") end
  return write(writer, "$", #s, "\r\n", s, "\r\n")
end

local function wrong_args(writer, name)
  return write(writer, "-ERR wrong number of arguments for '", name:lower(), "' command\r\n")
end

local commands = {}
function commands.PING(writer, args, n)
  if n > 2 then return wrong_args(writer, "ping") end
  if args[2] then return bulk(writer, args[2]) end
  return write(writer, "+PONG\r\n")
end
function commands.ECHO(writer, args, n)
  if n ~= 2 then return wrong_args(writer, "echo") end
  return bulk(writer, args[2])
end
function commands.SET(writer, args, n)
  if n ~= 3 then return wrong_args(writer, "set") end
  store[args[2]] = args[3]
  return write(writer, "+OK\r\n")
end
function commands.GET(writer, args, n)
  if n ~= 2 then return wrong_args(writer, "get") end
  return bulk(writer, store[args[2]])
end
-- DEL and EXISTS count the keys named (EXISTS counts repeats, as Redis does).
local function count_keys(writer, args, n, name, drop)
  if n < 2 then return wrong_args(writer, name) end
  local found = 0
  for i = 2, n do
    if store[args[i]] ~= nil then
      found = found + 1
      if drop then store[args[i]] = nil end
    end
  end
  return write(writer, ":", found, "\r\n")
end
function commands.DEL(writer, args, n) return count_keys(writer, args, n, "del", true) end
function commands.EXISTS(writer, args, n) return count_keys(writer, args, n, "exists", false) end
-- CONFIG GET pattern: the parameter and its value, or an empty array.
function commands.CONFIG(writer, args, n)
  if n ~= 3 or args[2]:upper() ~= "GET" then
    return write(writer, "-ERR only CONFIG GET parameter is supported\r\n")
  end
  local value = config[args[3]:lower()]
  if value == nil then return write(writer, "*0\r\n") end
  write(writer, "*2\r\n")
  bulk(writer, args[3]:lower())
  return bulk(writer, value)
end

-- Runs one command; returns false to end the connection (QUIT).
local function execute(writer, args, n)
  if n == 0 then return true end -- an empty inline line
  local name = args[1]
  local command = commands[name] or commands[name:upper()]
  if command then
    command(writer, args, n)
    return true
  end
  if name:upper() == "QUIT" then
    write(writer, "+OK\r\n")
    return false
  end
  write(writer, "-ERR unknown command '", name, "'\r\n")
  return true
end

local function serve(_, reader, writer)
  local args = {}
  while true do
    local n, err, code = read_command(reader, args)
    if not n then
      if code == "protocol" or code == "line_too_long" then write(writer, "-ERR ", err, "\r\n") end
      return
    end
    local more = execute(writer, args, n)
    for i = 1, n do args[i] = nil end -- the values go; the table stays for the next command
    if not more then return end
  end
end

coronet.run(function()
  local server = assert(tcp.Server.create(tcp.Where_to_listen.on_port(port), serve,
    { on_handler_error = "ignore", max_connections = 20000 }))
  io.stderr:write(("redis_lite listening on port %d\n"):format(server:listening_on()))
  coronet.signal("SIGTERM", "SIGINT"):wait()
  server:close()
end)
