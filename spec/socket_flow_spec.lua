-- spec/socket_flow_spec.lua: the flow methods (read, write, copy_to) belong
-- to every socket, whichever module made it: a socket from coronet.tcp has
-- them in a process that never loaded coronet.net.
local helper = require "helper"

local t = helper.t

-- Runs `code` in a fresh lua5.4 with this process's module paths; returns
-- its stdout and whether it exited with 0.
local function run_child(code)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(code)
  f:close()
  local command = ("LUA_PATH=%q LUA_CPATH=%q lua5.4 %q 2>&1"):format(package.path, package.cpath, file)
  local p = assert(io.popen(command))
  local out = p:read("a")
  local ok = p:close()
  os.remove(file)
  return out, ok
end

describe("socket flow methods", function()
  it("are on a tcp.connect socket without require of coronet.net", function()
    local out, ok = run_child(([[
      local coronet = require "coronet"
      local tcp = coronet.tcp
      coronet.run(function()
        local server = assert(tcp.Server.create_sock(
          tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0)),
          function(_, sock) sock:copy_to(sock) end))
        local sock = assert(tcp.connect(tcp.Where_to_connect.of_host_and_port("127.0.0.1", server:listening_on()),
          { timeout = %s }))
        assert(sock:write("ping"))
        sock:shutdown("send")
        local echoed = sock:read(100)
        io.write(type(sock.read), " ", type(sock.write), " ", type(sock.copy_to), " ", echoed, " ",
          tostring(package.loaded["coronet.net"]), " ", tostring(package.loaded["coronet.net_connect"]))
        sock:close()
        server:close()
      end)
    ]]):format(t(5)))
    assert.are.equal("function function function ping nil nil", out)
    assert.is_true(ok)
  end)

  it("are the same functions once coronet.net is loaded", function()
    local socket = require "coronet.socket"
    local read, write, copy_to = socket.read, socket.write, socket.copy_to
    require "coronet.net"
    assert.are.equal(read, socket.read)
    assert.are.equal(write, socket.write)
    assert.are.equal(copy_to, socket.copy_to)
  end)

  it("copy_to raises when the destination is not a socket", function()
    helper.run(function()
      local sock = helper.pair(function(_, w) w:write("x") end)
      assert.has_error(function() sock:copy_to({}) end, "bad argument #1 to 'copy_to' (coronet.socket expected, got table)")
      assert.has_error(function() sock:copy_to(nil) end)
      sock:close()
    end)
  end)
end)
