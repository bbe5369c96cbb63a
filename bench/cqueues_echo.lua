-- cqueues_echo.lua - echo server on cqueues, one coroutine per connection,
-- for bench/run.sh.
--   lua5.4 bench/cqueues_echo.lua PORT      serves 127.0.0.1:PORT until killed
-- Reads use format -65536 in binary mode: "whatever is available, at least
-- one byte, at most 64 KiB", so partial reads are echoed as they come (no line
-- splitting, no CRLF translation). Writes are binary and unbuffered ("bn"),
-- so every chunk is flushed to the kernel before the next read; when the
-- socket is full the write yields, which is the backpressure.
local cqueues = require "cqueues"
local socket = require "cqueues.socket"

local port = assert(tonumber(arg[1]), "usage: cqueues_echo.lua PORT")

local cq = cqueues.new()
local srv = socket.listen{ host = "127.0.0.1", port = port, reuseaddr = true, nodelay = true }
assert(srv:listen())

-- return I/O errors (ECONNRESET when a client closes with unread data) from
-- xread/xwrite instead of raising them
local function return_error(_, _, why) return why end

local function serve(con)
  con:onerror(return_error)
  con:setmode("b", "bn")
  while true do
    local data = con:xread(-65536, "b")
    if not data then break end -- EOF or error
    local ok = con:xwrite(data, "bn")
    if not ok then break end
  end
  con:close()
end

cq:wrap(function()
  while true do
    local con, err = srv:accept({ nodelay = true })
    if con then
      cq:wrap(serve, con)
    else
      io.stderr:write("cqueues_echo: accept: ", tostring(err), "\n")
      cqueues.sleep(0.01) -- e.g. EMFILE: do not spin
    end
  end
end)

while true do
  local ok, err = cq:loop()
  if not ok then io.stderr:write("cqueues_echo: ", tostring(err), "\n") end
end
