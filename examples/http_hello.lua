-- http_hello.lua PORT: an HTTP/1.1 "Hello, World!" server. Keep-alive
-- (pipelined requests too), HTTP/1.0 (closes unless keep-alive is asked),
-- `Connection: close`, HEAD (the headers alone), request bodies with
-- Content-Length (read and dropped), and 400 on anything it cannot parse.
-- The head is read in one call (read_until "\r\n\r\n", bounded by its
-- max option) and parsed with a few plain finds and anchored matches on it.
-- Serves until SIGTERM or SIGINT (Ctrl-C); port 0 picks a free port. Finds the module built in
-- the checkout by itself.
local root = (arg[0]:match("^(.*)/examples/[^/]*$") or ".")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local coronet = require "coronet"
local tcp = coronet.tcp
local reader_fns, writer_fns = require "coronet.reader", require "coronet.writer"

local port = tonumber(arg[1] or "8080")
local BODY = "Hello, World!"
local MAX_BODY = 64 * 1024 * 1024

-- The heads of every answer, made once.
local function response(status, body, connection)
  return table.concat({ "HTTP/1.1 ", status, "\r\nServer: coronet\r\nContent-Type: text/plain\r\nContent-Length: ",
                        #body, "\r\n", connection and ("Connection: " .. connection .. "\r\n") or "", "\r\n" })
end
local OK_KEEP, OK_CLOSE = response("200 OK", BODY), response("200 OK", BODY, "close")
local OK_KEEP_10 = response("200 OK", BODY, "keep-alive") -- HTTP/1.0 keeps only when told
local BAD = response("400 Bad Request", "Bad Request\n", "close") .. "Bad Request\n"
local NOT_IMPLEMENTED = response("501 Not Implemented", "", "close") -- a chunked request body

-- Drops a request body of n bytes: what is buffered, then what follows.
local function skip_body(reader, n)
  n = n - reader:discard(n)
  while n > 0 do
    local chunk = reader:read(n)
    if not chunk then return false end
    n = n - #chunk
  end
  return true
end

-- The calls made per request, as locals: string functions, and the reader's
-- and writer's methods as functions of their modules (r:read_until(d) is
-- reader.read_until(r, d)), called so without a method lookup each time.
local find, match, lower = string.find, string.match, string.lower
local read_until, write = reader_fns.read_until, writer_fns.write

-- The request line's method and minor version ("0" or "1"), or nil.
local function request_line(head)
  return match(head, "^(%u+) [^ \r\n]+ HTTP/1%.([01])%f[\r\0]")
end

-- The value of the field whose "\r\n<name>:" is given, up to its line's end,
-- or nil. A plain find (memchr and memcmp) then a match anchored where the
-- value starts: an unanchored pattern would be tried at every byte.
local function field(fields, name)
  local at = find(fields, name, 1, true)
  return at and match(fields, "^[^\r]*", at + #name)
end

-- Answers one request whose head (without its blank line) is `head`.
-- Returns true to keep the connection.
local function answer(reader, writer, head)
  local method, minor = request_line(head)
  if not method then
    writer:write(BAD)
    return false
  end
  local fields = lower(head) -- each field follows a "\r\n"
  if field(fields, "\r\ntransfer-encoding:") then
    writer:write(NOT_IMPLEMENTED)
    return false
  end
  local length = 0
  local value = field(fields, "\r\ncontent-length:")
  if value then
    length = tonumber(value:match("^[ \t]*(%d+)[ \t]*$"))
    if not length or length > MAX_BODY then
      writer:write(BAD)
      return false
    end
  end
  local connection = field(fields, "\r\nconnection:") or ""
  local close, headers
  if minor == "1" then
    close = find(connection, "close", 1, true) ~= nil
    headers = close and OK_CLOSE or OK_KEEP
  else
    close = find(connection, "keep-alive", 1, true) == nil
    headers = close and OK_CLOSE or OK_KEEP_10
  end
  if length > 0 and not skip_body(reader, length) then return false end
  if method == "HEAD" then
    write(writer, headers)
  else
    write(writer, headers, BODY)
  end
  return not close
end

-- One connection: requests until the client closes, asks to, or sends junk.
-- A head longer than 8 KiB (nginx's default bound) is junk too.
local HEAD_LIMIT = { max = 8192 }
local function serve(_, reader, writer)
  while true do
    local head, _, code = read_until(reader, "\r\n\r\n", HEAD_LIMIT)
    if not head then
      if code == "line_too_long" then writer:write(BAD) end
      return
    end
    if not answer(reader, writer, head) then return end
  end
end

-- Loaded by examples/https_hello.lua (dofile), this file gives its handler
-- to serve over TLS instead of running.
if not arg[0]:match("http_hello%.lua$") then return serve end

coronet.run(function()
  local server = assert(tcp.Server.create(tcp.Where_to_listen.on_port(port), serve,
    { on_handler_error = "ignore", max_connections = 20000 }))
  io.stderr:write(("http_hello listening on port %d\n"):format(server:listening_on()))
  coronet.signal("SIGTERM", "SIGINT"):wait()
  server:close()
end)
