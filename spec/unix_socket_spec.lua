-- spec/unix_socket_spec.lua: Tcp.Server and Tcp.connect over unix domain sockets.
local helper = require "helper"
local coronet = require "coronet"
local core = require "coronet.core"

local tcp = coronet.tcp
local Server = tcp.Server
local t = helper.t

-- True when path exists and is a socket.
local function is_socket_file(path)
  return os.execute("test -S '" .. path .. "'") == true
end

local function exists(path)
  return os.execute("test -e '" .. path .. "'") == true
end

-- Asserts that a connect to the socket file `path` fails with ENOENT.
local function assert_connect_fails_with_enoent(path)
  local sock, err, code = tcp.connect(tcp.Where_to_connect.of_file(path))
  assert.is_nil(sock)
  assert.are.equal("ENOENT", code)
  assert.are.equal("ENOENT", err.code)
end

-- A unix server on a fresh path; returns server, path.
local function unix_server(handler, opts, name)
  local path = helper.unix_path(name)
  local server = assert(Server.create(tcp.Where_to_listen.on_file(path), handler, opts))
  return server, path
end

describe("unix sockets", function()
  it("echo through a server on a file, with a client from Where_to_connect.of_file", function()
    helper.run(function()
      local server, path = unix_server(helper.echo)
      local sock, r, w = helper.connect(path)
      for i = 1, 3 do
        assert(w:write("line " .. i .. "\n"))
        assert.are.equal("line " .. i, r:read_line({ timeout = t(2) }))
      end
      -- a larger payload round-trips byte for byte
      local big = string.rep("0123456789abcdef", 2048) -- 32 KiB, no newline
      assert(w:write(big, "\n"))
      local back, err = r:read_line({ timeout = t(5) })
      assert(back, err)
      assert.are.equal(#big, #back)
      assert.is_true(back == big)
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("gives the handler a unix address value with an empty path for an unnamed client", function()
    helper.run(function()
      local seen = coronet.ivar()
      local server, path = unix_server(function(address, reader)
        seen:fill(address)
        reader:read()
      end)
      local sock = helper.connect(path)
      local address = seen.deferred:wait(t(2))
      assert.is_true(core.is_address(address))
      assert.are.equal("unix", address.family)
      assert.are.equal("", address.path)
      assert.is_nil(address.port)
      assert.is_nil(address.ip)
      assert.are.equal("", tostring(address))
      -- the client's own view: unnamed locally, the server's path as peer
      assert.are.equal("", sock:getsockname().path)
      assert.are.equal(path, sock:getpeername().path)
      assert.are.equal("unix", sock:getpeername().family)
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("create_sock hands over a unix socket", function()
    helper.run(function()
      local path = helper.unix_path("sock")
      local server = assert(Server.create_sock(tcp.Where_to_listen.on_file(path), function(address, sock)
        sock:writer():write(sock:getsockname().path .. "|" .. address.path .. "|")
      end))
      local sock, r = helper.connect(path)
      assert.are.equal(path .. "||", r:contents({ timeout = t(2) }))
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("listening_on returns the path and listening_on_address a unix address", function()
    helper.run(function()
      local server, path = unix_server(helper.echo)
      assert.are.equal(path, server:listening_on())
      local address = server:listening_on_address()
      assert.are.equal("unix", address.family)
      assert.are.equal(path, address.path)
      assert.is_true(address == coronet.unix_address(path))
      assert.are.equal("coronet.server (" .. path .. ")", tostring(server))
      assert.are.equal("integer", math.type(server:listening_socket()))
      helper.await(server:close())
    end)
  end)

  it("removes the socket file after close; later connects fail with ENOENT", function()
    helper.run(function()
      local server, path = unix_server(helper.echo)
      assert.is_true(is_socket_file(path))
      helper.await(server:close())
      assert.is_false(exists(path))
      assert_connect_fails_with_enoent(path)
    end)
  end)

  it("removes the socket file when run tears down a server left open", function()
    local path
    helper.run(function()
      local _
      _, path = unix_server(helper.echo)
      assert.is_true(is_socket_file(path))
      coronet.sleep(t(0.01))
    end)
    assert.is_false(exists(path))
  end)

  it("run returns and tears down a server left open even if fn never waited", function()
    local path
    helper.run(function()
      local _
      _, path = unix_server(helper.echo)
    end)
    assert.is_false(exists(path))
  end)

  it("refuses a path already in use with EADDRINUSE and leaves the first server's file", function()
    helper.run(function()
      local server, path = unix_server(helper.echo)
      local s2, err, code = Server.create(tcp.Where_to_listen.on_file(path), helper.echo)
      assert.is_nil(s2)
      assert.are.equal("EADDRINUSE", code)
      assert.are.equal("EADDRINUSE", err.code)
      assert.is_truthy(tostring(err):find(path, 1, true))
      assert.is_true(is_socket_file(path))
      local sock, r, w = helper.connect(path)
      assert(w:write("alive\n"))
      assert.are.equal("alive", r:read_line({ timeout = t(2) }))
      sock:close()
      helper.await(server:close())
      assert.is_false(exists(path))
    end)
  end)

  it("fails to connect to a missing path with ENOENT", function()
    helper.run(function()
      local path = helper.unix_path("missing")
      assert_connect_fails_with_enoent(path)
    end)
  end)

  it("raises for a path too long for sun_path", function()
    local long = "/tmp/" .. string.rep("x", 200)
    assert.has_error(function() tcp.Where_to_listen.on_file(long) end)
    assert.has_error(function() tcp.Where_to_connect.of_file(long) end)
    local ok, err = pcall(coronet.unix_address, long)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("sun_path", 1, true))
    -- the longest path that fits is accepted
    local fits = "/tmp/" .. string.rep("y", 107 - 5)
    assert.are.equal(fits, coronet.unix_address(fits).path)
    assert.has_error(function() coronet.unix_address(fits .. "z") end)
    assert.has_error(function() coronet.unix_address("") end)
    assert.has_error(function() coronet.unix_address("a\0b") end)
  end)

  it("rejects create_inet on a unix address", function()
    helper.run(function()
      assert.has_error(function()
        Server.create_inet(tcp.Where_to_listen.on_file(helper.unix_path("inet")), helper.echo)
      end)
    end)
  end)

  it("tcp-only socket options fail with ENOTSUP on a unix socket", function()
    helper.run(function()
      local server, path = unix_server(helper.echo)
      local sock, r, w = helper.connect(path)
      w:write("x\n")
      assert.are.equal("x", r:read_line({ timeout = t(2) })) -- the handler has started
      local ok, err, code = sock:setoption("tcp-nodelay", true)
      assert.is_nil(ok)
      assert.are.equal("ENOTSUP", code)
      assert.are.equal("ENOTSUP", err.code)
      ok, _, code = sock:setoption("keepalive", true)
      assert.is_nil(ok)
      assert.are.equal("ENOTSUP", code)
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("counts bytes and connections in stats", function()
    helper.run(function()
      local server, path = unix_server(helper.echo)
      local sock, r, w = helper.connect(path)
      w:write("abc\n")
      assert.are.equal("abc", r:read_line({ timeout = t(2) }))
      local s = server:stats()
      assert.are.equal(1, s.accepted)
      assert.are.equal(1, s.connections)
      assert.are.equal(4, s.bytes_in)
      assert.are.equal(4, s.bytes_out)
      sock:close()
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      helper.await(server:close())
    end)
  end)

  it("close{close_existing_connections=true} closes unix connections too", function()
    helper.run(function()
      local result
      local server, path = unix_server(function(_, reader, writer)
        writer:write("ready\n")
        local _, _, code = reader:read_line()
        result = code
      end)
      local sock, r = helper.connect(path)
      assert.are.equal("ready", r:read_line({ timeout = t(2) }))
      helper.await(server:close({ close_existing_connections = true }))
      assert.are.equal(0, server:num_connections())
      assert.is_true(helper.eventually(function() return result ~= nil end))
      assert.are.equal("closed", result)
      local data, _, code = r:read(nil, { timeout = t(2) })
      assert.is_nil(data)
      assert.are.equal("closed", code)
      assert.is_false(exists(path))
      sock:close()
    end)
  end)
end)
