-- spec/tcp_connect_spec.lua: coronet.tcp.connect / connect_sock, their
-- failures (refused, DNS, timeout, interrupt, cancel), bind-before-connect,
-- IPv6 loopback and the socket's methods.
local coronet = require "coronet"
local helper = require "helper"
local tcp = coronet.tcp
local errors = coronet.errors

-- helper.run plus a short timer started as the body ends: coronet.run only
-- sees that the main fiber finished once the loop wakes up again, and a
-- listener with no traffic would otherwise keep it asleep (see the report).
local function run(fn, limit)
  return helper.run(function()
    local results = table.pack(fn())
    coronet.spawn(coronet.sleep, helper.t(0.01))
    return table.unpack(results, 1, results.n)
  end, limit)
end

-- A port that nothing listens on: a server's port after it has closed.
local function closed_port()
  local server, port = helper.server(function() end)
  server:close()
  local n = select("#", server:close_finished():wait(helper.t(2)))
  assert(n == 0, "server did not close")
  return port
end

-- An echo server: writes back every line it reads, prefixed.
local function echo_server()
  return helper.server(function(_, r, w)
    while true do
      local line = r:read_line()
      if not line then return end
      w:write("echo:", line, "\n")
    end
  end)
end

describe("coronet.tcp.connect", function()
  it("returns a socket, reader and writer talking to the server", function()
    run(function()
      local server, port = echo_server()
      local sock, r, w = tcp.connect(helper.to(port))
      assert.is_truthy(sock)
      assert.equal(r, sock:reader())
      assert.equal(w, sock:writer())
      assert.equal(sock, r:socket())
      assert.equal(sock, w:socket())
      assert.is_true(w:write("hello\n"))
      assert.equal("echo:hello", r:read_line())
      local peer = sock:getpeername()
      assert.equal("inet", peer.family)
      assert.equal("127.0.0.1", peer.ip)
      assert.equal(port, peer.port)
      assert.equal("127.0.0.1:" .. port, tostring(peer))
      local me = sock:getsockname()
      assert.equal("127.0.0.1", me.ip)
      assert.is_true(me.port > 0 and me.port ~= port)
      assert.is_false(sock:is_closed())
      sock:close()
      assert.is_true(sock:is_closed())
      assert.is_true(sock:close_finished(helper.t(2)))
    end)
  end)

  it("connect_sock returns just the socket, whose reader and writer work", function()
    run(function()
      local server, port = echo_server()
      local results = table.pack(tcp.connect_sock(helper.to(port)))
      local sock = results[1]
      assert.is_truthy(sock)
      assert.is_nil(results[2])
      local r, w = sock:reader(), sock:writer()
      assert.equal(r, sock:reader()) -- the same half every time
      w:write("x\n")
      assert.equal("echo:x", r:read_line({ timeout = helper.t(2) }))
      sock:close()
    end)
  end)

  it("connects through a host name that resolves (localhost)", function()
    run(function()
      local server, port = echo_server()
      local sock, r, w = tcp.connect(tcp.Where_to_connect.of_host_and_port("localhost", port), { timeout = helper.t(5) })
      if not sock and r.code == "ECONNREFUSED" then
        -- localhost resolved to ::1 only; nothing to assert about our server
        server:close()
        return
      end
      assert.is_truthy(sock, r)
      w:write("n\n")
      assert.equal("echo:n", r:read_line())
      sock:close()
    end)
  end)

  it("fails with ECONNREFUSED (kind refused) when nothing listens", function()
    run(function()
      local port = closed_port()
      local sock, err, code = tcp.connect(helper.to(port))
      assert.is_nil(sock)
      assert.equal("ECONNREFUSED", code)
      assert.is_true(errors.is(err, "ECONNREFUSED"))
      assert.equal("refused", err.kind)
      assert.equal("127.0.0.1:" .. port, err.address)
      assert.is_number(err.errno)
      assert.matches(tostring(port), tostring(err), 1, true)
      assert.matches("ECONNREFUSED", "msg: " .. err, 1, true) -- concatenates
      local sock2, err2, code2 = tcp.connect_sock(helper.to(port))
      assert.is_nil(sock2)
      assert.equal("ECONNREFUSED", code2)
      assert.equal("refused", err2.kind)
    end)
  end)

  it("fails with an EAI_ code for a name under .invalid", function()
    run(function()
      local host = "no-such-host-coronet.invalid"
      local sock, err, code = tcp.connect(tcp.Where_to_connect.of_host_and_port(host, 80), { timeout = helper.t(8) })
      assert.is_nil(sock)
      assert.is_string(code)
      assert.equal("EAI_", code:sub(1, 4))
      assert.is_true(errors.is(err, code))
      assert.equal(host, err.address)
      assert.matches(host, tostring(err), 1, true)
      if code == "EAI_NONAME" then assert.equal("no_matching_addresses", err.kind) end
    end, 15)
  end)

  it("with timeout 0 or a tiny timeout either connects or fails with timeout, never hangs", function()
    run(function()
      local server, port = echo_server()
      local outcomes = {}
      for _, timeout in ipairs({ 0, 0.0001, 0.001 }) do
        for _, target in ipairs({ helper.to(port), tcp.Where_to_connect.of_host_and_port("localhost", port) }) do
          local t0 = coronet.now()
          local sock, err, code = tcp.connect(target, { timeout = timeout })
          assert.is_true(coronet.now() - t0 < helper.t(2))
          if sock then
            outcomes.ok = true
            sock:close()
            assert.is_true(sock:close_finished(helper.t(2)))
          elseif code ~= "ECONNREFUSED" then -- localhost may be ::1 only
            assert.equal("timeout", code)
            assert.is_true(errors.is(err, "timeout"))
            outcomes.timeout = true
          end
        end
      end
      assert.is_true(outcomes.ok or outcomes.timeout)
    end)
  end)

  it("timeout = false means no limit, and a generous timeout connects", function()
    run(function()
      local server, port = echo_server()
      for _, timeout in ipairs({ false, helper.t(5) }) do
        local sock, r, w = tcp.connect(helper.to(port), { timeout = timeout })
        assert.is_truthy(sock, r)
        w:write("t\n")
        assert.equal("echo:t", r:read_line())
        sock:close()
      end
    end)
  end)

  it("an interrupt already determined aborts at once with cancelled", function()
    run(function()
      local accepted = 0
      local server, port = helper.server(function() accepted = accepted + 1 end)
      local ivar = coronet.ivar()
      ivar:fill()
      local t0 = coronet.now()
      local sock, err, code = tcp.connect(helper.to(port), { interrupt = ivar.deferred })
      assert.is_true(coronet.now() - t0 < helper.t(0.5))
      assert.is_nil(sock)
      assert.equal("cancelled", code)
      assert.is_true(errors.is(err, "cancelled"))
      local sock2, _, code2 = tcp.connect_sock(helper.to(port), { interrupt = coronet.deferred.of(true) })
      assert.is_nil(sock2)
      assert.equal("cancelled", code2)
      coronet.sleep(helper.t(0.05))
      assert.equal(0, accepted)
    end)
  end)

  it("an interrupt filled while resolving aborts with cancelled", function()
    run(function()
      local server, port = echo_server()
      local ivar = coronet.ivar()
      local connecting = coronet.spawn(function()
        return tcp.connect(tcp.Where_to_connect.of_host_and_port("localhost", port), { interrupt = ivar.deferred })
      end)
      coronet.sleep(0)
      ivar:fill()
      local sock, err, code = connecting:join(helper.t(2))
      if sock then sock:close() end -- the connect may finish before the interrupt lands
      if not sock then
        assert.equal("cancelled", code)
        assert.is_true(errors.is(err, "cancelled"))
      end
      -- an interrupt that is never filled does not disturb a connect
      local ok_sock = tcp.connect(helper.to(port), { interrupt = coronet.ivar().deferred })
      assert.is_truthy(ok_sock)
      ok_sock:close()
    end)
  end)

  it("cancelling the connecting fiber returns cancelled", function()
    run(function()
      local server, port = echo_server()
      -- cancelled before it starts: the connect fails at once
      local early = coronet.spawn(function()
        return tcp.connect(helper.to(port))
      end)
      early:cancel()
      local results = table.pack(early:join(helper.t(2)))
      assert.is_nil(results[1])
      assert.equal("cancelled", results[3])
      -- cancelled while the name resolves
      local started = false
      local inflight = coronet.spawn(function()
        started = true
        local sock, err, code = tcp.connect(tcp.Where_to_connect.of_host_and_port("localhost", port))
        if sock then sock:close() end
        return sock and "connected" or code, err
      end)
      while not started do coronet.sleep(0) end
      inflight:cancel()
      local outcome = table.pack(inflight:join(helper.t(2)))
      assert.is_true(outcome[1] == "cancelled" or outcome[3] == "cancelled")
    end)
  end)

  it("binds before connecting with tcp.socket() and opts.socket", function()
    run(function()
      local peer_port
      local server, port = helper.server(function(address, r, w)
        peer_port = address.port
        w:write("hi\n")
        r:contents()
      end)
      local sock = tcp.socket()
      assert.is_true(sock:bind(coronet.address("127.0.0.1", 0)))
      local bound = sock:getsockname()
      assert.equal("127.0.0.1", bound.ip)
      assert.is_true(bound.port > 0)
      local same, r, w = tcp.connect(helper.to(port), { socket = sock })
      assert.equal(sock, same)
      assert.equal(bound, sock:getsockname())
      assert.equal(port, sock:getpeername().port)
      assert.equal("hi", r:read_line({ timeout = helper.t(2) }))
      assert.equal(bound.port, peer_port)
      w:close()
      sock:close()
      assert.is_true(sock:close_finished(helper.t(2)))
    end)
  end)

  it("bind to an address in use fails with EADDRINUSE", function()
    run(function()
      local server, port = helper.server(function() end)
      local sock = tcp.socket()
      local ok, err, code = sock:bind(coronet.address("127.0.0.1", port))
      if ok then -- libuv may defer the bind error to connect/listen
        local s2, err2, code2 = tcp.connect(helper.to(port), { socket = sock })
        if s2 then s2:close() end
        assert.is_nil(s2)
        assert.equal("EADDRINUSE", code2, tostring(err2))
      else
        assert.equal("EADDRINUSE", code)
        assert.is_true(errors.is(err, "EADDRINUSE"))
      end
      sock:close()
    end)
  end)

  it("connects over IPv6 loopback to a server on ::1", function()
    run(function()
      local where = tcp.Where_to_listen.of_address(coronet.address("::1", 0))
      local server, err, code = tcp.Server.create(where, function(address, r, w)
        w:write(address.family, "\n")
        r:contents()
      end)
      if not server then
        pending("no IPv6 loopback here: " .. tostring(code))
        return
      end
      local port = server:listening_on()
      assert.equal("inet6", server:listening_on_address().family)
      local sock, r, w = tcp.connect(tcp.Where_to_connect.of_address(coronet.address("::1", port)))
      assert.is_truthy(sock, r)
      assert.equal("inet6", r:read_line({ timeout = helper.t(2) }))
      local peer = sock:getpeername()
      assert.equal("inet6", peer.family)
      assert.equal("::1", peer.ip)
      assert.equal(port, peer.port)
      assert.equal("::1", sock:getsockname().ip)
      w:close()
      sock:close()
      server:close() -- the handler has run (it wrote), so closing here is safe
      -- and a host literal "::1" through of_host_and_port after the server is gone
      assert.equal(0, select("#", server:close_finished():wait(helper.t(2))))
      local s2, _, code2 = tcp.connect(tcp.Where_to_connect.of_host_and_port("::1", port))
      assert.is_nil(s2)
      assert.equal("ECONNREFUSED", code2)
    end)
  end)

  it("adopt_fd wraps a descriptor (rejects one that is not a socket)", function()
    run(function()
      local f = assert(io.open("/dev/null"))
      -- stdin/stdout in a test run are not sockets; fd 0 must be refused, not adopted
      local sock, err, code = tcp.adopt_fd(0)
      if sock then sock:abort() end
      assert.is_nil(sock)
      assert.is_string(code)
      assert.is_true(errors.is(err, code))
      f:close()
      assert.has_error(function() tcp.adopt_fd(-1) end)
    end)
  end)
end)

describe("socket methods", function()
  it("setoption tcp-nodelay and keepalive return true; unknown options raise", function()
    run(function()
      local server, port = echo_server()
      local sock, r, w = tcp.connect(helper.to(port))
      assert.is_true(sock:setoption("tcp-nodelay", true))
      assert.is_true(sock:setoption("tcp-nodelay", false))
      assert.is_true(sock:setoption("keepalive", true))
      assert.is_true(sock:setoption("keepalive", 30))
      assert.is_true(sock:setoption("keepalive", false))
      assert.is_true(sock:setoption("reuseaddr", true))
      assert.has_error(function() sock:setoption("no-such-option", true) end)
      w:write("still\n")
      assert.equal("echo:still", r:read_line())
      sock:close()
    end)
  end)

  it("getfd is a non-negative integer", function()
    run(function()
      local server, port = echo_server()
      local sock = tcp.connect_sock(helper.to(port))
      local fd = sock:getfd()
      assert.equal("integer", math.type(fd))
      assert.is_true(fd > 2)
      sock:close()
    end)
  end)

  it("shutdown('send') makes the peer's read return nil, err, closed", function()
    run(function()
      local seen = coronet.ivar()
      local server, port = helper.server(function(_, r, w)
        local data, err, code = r:read()
        local first = data
        local line, err2, code2 = r:read_line()
        seen:fill(first, line, code2, errors.is(err2, "closed"))
        w:write("after\n") -- the other direction still works
        w:flush()
      end)
      local sock, r, w = tcp.connect(helper.to(port))
      w:write("partial")
      assert.is_true(w:flush())
      assert.is_true(sock:shutdown("send"))
      local first, line, code, is_err = seen.deferred:wait(helper.t(2))
      assert.equal("partial", first)
      assert.is_nil(line)
      assert.equal("closed", code)
      assert.is_true(is_err)
      assert.equal("after", r:read_line({ timeout = helper.t(2) }))
      assert.has_error(function() sock:shutdown("sideways") end)
      sock:close()
    end)
  end)

  it("settimeouts sets the read timeout; gettimeouts reports them", function()
    run(function()
      local server, port = helper.server(function(_, r) r:contents() end)
      local sock, r = tcp.connect(helper.to(port))
      local c, s, rd = sock:gettimeouts()
      assert.is_number(c)
      assert.is_false(s)
      assert.is_false(rd)
      assert.equal(sock, sock:settimeouts(helper.t(3), helper.t(2), helper.t(0.15)))
      c, s, rd = sock:gettimeouts()
      assert.is_true(math.abs(c - helper.t(3)) < 1e-9)
      assert.is_true(math.abs(s - helper.t(2)) < 1e-9)
      assert.is_true(math.abs(rd - helper.t(0.15)) < 1e-9)
      local t0 = coronet.now()
      local line, err, code = r:read_line()
      local elapsed = coronet.now() - t0
      assert.is_nil(line)
      assert.equal("timeout", code)
      assert.is_true(errors.is(err, "timeout"))
      assert.is_true(elapsed >= helper.t(0.12), "elapsed " .. elapsed)
      assert.is_true(elapsed < helper.t(2), "elapsed " .. elapsed)
      -- an explicit per-call timeout overrides it
      local t1 = coronet.now()
      local _, _, code2 = r:read({ timeout = helper.t(0.02) })
      assert.equal("timeout", code2)
      assert.is_true(coronet.now() - t1 < helper.t(0.12) + helper.t(1))
      -- nil keeps, false clears
      sock:settimeouts(nil, nil, false)
      c, s, rd = sock:gettimeouts()
      assert.is_false(rd)
      assert.is_true(math.abs(s - helper.t(2)) < 1e-9)
      sock:close()
    end)
  end)

  it("stats count bytes in and out", function()
    run(function()
      local server, port = echo_server()
      local sock, r, w = tcp.connect(helper.to(port))
      w:write("abc\n")
      assert.equal("echo:abc", r:read_line())
      local st = sock:stats()
      assert.equal(4, st.bytes_out)
      assert.equal(9, st.bytes_in)
      sock:close()
    end)
  end)

  it("abort closes at once and the peer sees the end", function()
    run(function()
      local seen = coronet.ivar()
      local server, port = helper.server(function(_, r)
        local data, _, code = r:contents()
        seen:fill(data, code)
      end)
      local sock = tcp.connect_sock(helper.to(port))
      sock:abort()
      assert.is_true(sock:is_closed())
      assert.is_true(sock:close_finished(helper.t(2)))
      local data, code = seen.deferred:wait(helper.t(2))
      assert.is_true(data == "" or code == "ECONNRESET" or code == "closed", tostring(code))
    end)
  end)
end)
