-- examples/nc.lua against examples/echo_server.lua, and examples/chat_server.lua
-- with netcat-openbsd's nc as its clients: real processes on loopback, the
-- bytes compared by checksum.
local helper = require "spec.helper"

local t = helper.t

-- Runs a shell command (blocking this loop: the servers are other processes).
local function sh(cmd)
  local ok = os.execute(cmd)
  assert.is_true(ok, cmd)
end

local function sha256(path)
  local p = assert(io.popen("sha256sum " .. path))
  local sum = p:read("a"):match("^(%x+)")
  p:close()
  return sum
end

local function read_file(path)
  local f = assert(io.open(path))
  local data = f:read("a")
  f:close()
  return data
end

describe("examples/nc.lua", function()
  it("pipes stdin to the echo server and its answers to stdout: pipes and regular files, 3 MB, same checksum", function()
    helper.run(function()
      local root = io.popen("pwd"):read("l")
      local pid, port, log = helper.start_example("echo_server.lua")
      local input, out_pipe, out_file = os.tmpname(), os.tmpname(), os.tmpname()
      sh(("head -c 2250000 /dev/urandom | base64 > %s"):format(input))
      local nc = ("env -u LD_PRELOAD timeout %d lua5.4 %s/examples/nc.lua 127.0.0.1 %d"):format(math.ceil(t(20)), root, port)
      sh(("cat %s | %s | cat > %s"):format(input, nc, out_pipe)) -- stdin and stdout are pipes
      sh(("%s < %s > %s"):format(nc, input, out_file))            -- both are regular files
      assert.equal(sha256(input), sha256(out_pipe))
      assert.equal(sha256(input), sha256(out_file))
      local p = assert(io.popen(("%s 2>&1 < /dev/null"):format(nc:gsub("%d+$", tostring(helper.closed_port())))))
      local out = p:read("a")
      assert.is_falsy(p:close())
      assert.matches("ECONNREFUSED", out)
      for _, path in ipairs { input, out_pipe, out_file } do os.remove(path) end
      helper.stop_example(pid, log, "echo_server.lua")
    end, 60)
  end)
end)

describe("examples/chat_server.lua with nc (netcat-openbsd) clients", function()
  it("relays a line from one nc to the other, with joins and leaves", function()
    helper.run(function()
      local pid, port, log = helper.start_example("chat_server.lua")
      local out_a, out_b = os.tmpname(), os.tmpname()
      -- b connects first and stays (its stdin open) while a joins, says a line and leaves
      local s = t(1)
      sh(("( sleep %g | nc -q 1 127.0.0.1 %d > %s & " ..
          "sleep %g; ( sleep %g; echo 'hello from nc'; sleep %g ) | nc -q 0 127.0.0.1 %d > %s; wait )")
        :format(4 * s, port, out_b, s, s, s, port, out_a))
      local a, b = read_file(out_a), read_file(out_b)
      local a_name = a:match("^welcome, (127%.0%.0%.1:%d+)\n")
      assert.is_truthy(a_name, a)
      assert.matches("^welcome, 127%.0%.0%.1:%d+\n", b)
      assert.is_truthy(b:find(a_name .. " joined\n", 1, true), b)
      assert.is_truthy(b:find(a_name .. ": hello from nc\n", 1, true), b)
      assert.is_truthy(b:find(a_name .. " left\n", 1, true), b)
      os.remove(out_a)
      os.remove(out_b)
      helper.stop_example(pid, log, "chat_server.lua")
    end, 60)
  end)
end)
