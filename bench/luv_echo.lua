-- luv_echo.lua - echo server on lua-luv (libuv callbacks), for bench/run.sh.
--   lua5.4 bench/luv_echo.lua PORT      serves 127.0.0.1:PORT until killed
-- Each read is written straight back. If the kernel does not take a write at
-- once (libuv queues it), reading stops until the write queue drains, so a
-- slow reader cannot make the server buffer without bound.
local uv = require "luv"

local port = assert(tonumber(arg[1]), "usage: luv_echo.lua PORT")
local HIGH_WATER = 1024 * 1024

-- libuv writes with write(2): a write to a connection the peer has reset
-- raises SIGPIPE, whose default action kills the process. Catching it with a
-- signal handle (as a luv program must) turns that into an EPIPE error.
local sigpipe = uv.new_signal()
sigpipe:start("sigpipe", function() end)

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", port))

local function on_connection(err)
  if err then return end
  local c = uv.new_tcp()
  if not server:accept(c) then c:close() return end
  c:nodelay(true)
  local on_read
  local function on_drained(werr)
    if werr then
      if not c:is_closing() then c:close() end
      return
    end
    if not c:is_closing() then c:read_start(on_read) end
  end
  function on_read(rerr, data)
    if rerr or not data then -- error or EOF
      if not c:is_closing() then c:close() end
      return
    end
    if c:get_write_queue_size() > HIGH_WATER then
      c:read_stop()
      c:write(data, on_drained)
    else
      c:write(data)
    end
  end
  c:read_start(on_read)
end

assert(server:listen(1024, on_connection))
uv.run()
