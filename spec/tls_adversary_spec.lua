-- spec/tls_adversary_spec.lua: TLS (csrc/core/tls.c, tls_transport.c,
-- csrc/binding/ltls.c, lua/coronet/tls.lua) as the hardest outside tester
-- would use it: stray resumes and waits where a fiber cannot yield, cancel,
-- timeouts and closes from another fiber during the handshake and during
-- reads and writes, peers that reset or stall or trickle or send garbage,
-- starttls misuse, the collector and lua_close with handshakes in flight,
-- and many handshakes at once. Each case fails on a defect.
local helper = require "helper"
local coronet = require "coronet"
local process = require "coronet.process"
local switch = require "coronet.switch"

local tcp = coronet.tcp
local t = helper.t

local tls_fixture = require "tls_fixture"
local certificates = tls_fixture.certificates("tls-adversary")
setup(certificates.make)
teardown(certificates.remove)
local cert, server_tls, client_tls = certificates.cert, certificates.server_tls, certificates.client_tls
local with, to_localhost = tls_fixture.with, tls_fixture.to_localhost

-- starttls options: a client that verifies names the server.
local function starttls_client(extra) return client_tls(with({ server_name = "localhost" }, extra)) end
local function starttls_server(extra) return server_tls(with({ server = true }, extra)) end

-- A plain server whose handler waits for `go`, then runs the TLS server
-- side with starttls and echoes lines: a client's handshake waits until go.
local function late_tls_server(go)
  return helper.server(function(_, r, w)
    go.deferred:wait()
    if r:socket():starttls(starttls_server()) then helper.echo(_, r, w) end
  end)
end

local refuse_strays = helper.refuse_strays

-- Spawns fn in a fiber that counts how often it came back; returns the
-- fiber, a function giving its coroutine and the count.
local function counted(fn)
  local co, returns = nil, 0
  local fiber = coronet.spawn(function()
    co = coroutine.running()
    local r = table.pack(fn())
    returns = returns + 1
    return table.unpack(r, 1, r.n)
  end)
  coronet.sleep(t(0.05))
  return fiber, function() return co, returns end
end

-- A TLS echo server; returns server, port.
local function tls_echo_server(extra, handler, opts)
  return helper.server(handler or helper.echo, with({ tls = server_tls(extra) }, opts))
end

-- A TLS client connection to port: socket, reader, writer.
local function tls_client(port, extra, opts)
  return helper.connect(to_localhost(port), with({ tls = client_tls(extra) }, opts))
end

-- One line through a fresh TLS connection to port.
local function round_trip(port)
  local sock, r, w = tls_client(port)
  assert(w:write("ping\n"))
  assert.are.equal("ping", r:read_line({ timeout = t(5) }))
  sock:close()
end

describe("a stray coroutine.resume of a fiber waiting in TLS", function()
  it("during starttls's handshake is refused; the real wake-up arrives once", function()
    helper.run(function()
      local go = coronet.ivar()
      local server = late_tls_server(go)
      local sock, r, w = helper.connect(server:listening_on())
      local fiber, state = counted(function() return sock:starttls(starttls_client()) end)
      refuse_strays((state()))
      assert.are.equal(0, select(2, state()))
      go:fill()
      assert.is_true(fiber:join(t(5)))
      assert.are.equal(1, select(2, state()))
      assert(w:write("after\n"))
      assert.are.equal("after", r:read_line({ timeout = t(5) }))
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("during tcp.connect's handshake is refused; the connect ends once", function()
    helper.run(function()
      local go = coronet.ivar()
      local server, port = late_tls_server(go)
      local fiber, state = counted(function() return tcp.connect(to_localhost(port), { tls = client_tls() }) end)
      refuse_strays((state()))
      go:fill()
      local sock, r, w = fiber:join(t(5))
      assert.is_truthy(sock, tostring(r))
      assert.are.equal(1, select(2, state()))
      assert(w:write("x\n"))
      assert.are.equal("x", r:read_line({ timeout = t(5) }))
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("during a TLS read is refused; the line read later comes once, whole", function()
    helper.run(function()
      local go = coronet.ivar()
      local server, port = tls_echo_server(nil, function(_, _, w)
        go.deferred:wait()
        w:write("late\n")
        w:flushed()
      end)
      local sock, r = tls_client(port)
      local fiber, state = counted(function() return r:read_line({ timeout = t(5) }) end)
      refuse_strays((state()))
      go:fill()
      assert.are.equal("late", fiber:join(t(5)))
      assert.are.equal(1, select(2, state()))
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("during a TLS write waiting for room is refused; the write completes once", function()
    helper.run(function()
      local big = string.rep("w", 16 * 1024 * 1024)
      local go = coronet.ivar()
      local server, port = tls_echo_server(nil, function(_, r, w)
        go.deferred:wait()
        local data = r:really_read(2 * #big, { timeout = t(30) })
        w:write(data and #data == 2 * #big and "ok\n" or "short\n")
      end)
      local sock, r, w = tls_client(port, nil, { writer_buffer_size = 64 * 1024 })
      assert(w:write(big)) -- above the mark: the next write waits
      local fiber, state = counted(function() return w:write(big) end)
      refuse_strays((state()))
      assert.are.equal(0, select(2, state()))
      go:fill()
      assert.is_true(fiber:join(t(30)))
      assert.are.equal(1, select(2, state()))
      assert.are.equal("ok", r:read_line({ timeout = t(30) }))
      sock:close()
      helper.await(server:close())
    end, 60)
  end)
end)

describe("a TLS wait where the fiber cannot yield", function()
  local boundaries = {
    { "a table.sort comparator", function(wait) table.sort({ 3, 1, 2 }, function(a, b) wait() return a < b end) end },
    { "a __tostring metamethod",
      function(wait) return tostring(setmetatable({}, { __tostring = function() wait() return "" end })) end },
  }
  for _, case in ipairs(boundaries) do
    it("starttls inside " .. case[1] .. " raises (cannot yield here), stacks nothing; the next starttls works", function()
      helper.run(function()
        local go = coronet.ivar()
        go:fill()
        local server, port = late_tls_server(go)
        local sock, r, w = helper.connect(port)
        local ok, err = pcall(case[2], function() return sock:starttls(starttls_client()) end)
        assert.is_false(ok)
        assert.matches("cannot yield here", tostring(err), 1, true)
        assert.is_nil(sock:tls_info())
        assert.is_true(sock:starttls(starttls_client()))
        assert(w:write("x\n"))
        assert.are.equal("x", r:read_line({ timeout = t(5) }))
        sock:close()
        helper.await(server:close())
      end)
    end)

    it("a TLS read and flush inside " .. case[1] .. " raise, attach nothing; the next ones work", function()
      helper.run(function()
        local server, port = tls_echo_server()
        local sock, r, w = tls_client(port)
        local ok, err = pcall(case[2], function() return r:read_line() end)
        assert.is_false(ok)
        assert.matches("cannot yield here", tostring(err), 1, true)
        assert(w:write(string.rep("f", 64 * 1024), "\n"))
        ok, err = pcall(case[2], function() return w:flush() end)
        assert.is_false(ok)
        assert.matches("cannot yield here", tostring(err), 1, true)
        assert.is_true(w:flush(t(5)))
        assert.are.equal(64 * 1024, #r:read_line({ timeout = t(5) }))
        sock:close()
        helper.await(server:close())
      end)
    end)
  end
end)

describe("a TLS wait outside a coronet fiber", function()
  it("starttls and a TLS read in a coroutine of the user's raise naming coronet.spawn; the fiber's next ones work", function()
    helper.run(function()
      local go = coronet.ivar()
      go:fill()
      local server, port = late_tls_server(go)
      local sock, r, w = helper.connect(port)
      local ok, err = coroutine.wrap(function() return pcall(sock.starttls, sock, starttls_client()) end)()
      assert.is_false(ok)
      assert.matches("coronet.spawn", tostring(err), 1, true)
      assert.is_nil(sock:tls_info())
      assert.is_true(sock:starttls(starttls_client()))
      ok, err = coroutine.wrap(function() return pcall(r.read_line, r) end)()
      assert.is_false(ok)
      assert.matches("coronet.spawn", tostring(err), 1, true)
      assert(w:write("x\n"))
      assert.are.equal("x", r:read_line({ timeout = t(5) }))
      sock:close()
      helper.await(server:close())
    end)
  end)
end)

describe("cancel, timeouts and closes during TLS waits", function()
  -- After a failed starttls the socket is closed: every later call says "closed".
  local function closed_after_failure(sock, r, w)
    assert.is_nil(sock:tls_info())
    helper.failed_with("closed", r:read_line({ timeout = t(1) }))
    helper.failed_with("closed", w:write("more\n"))
    helper.failed_with("closed", sock:starttls(starttls_client()))
    sock:close()
  end

  it("fiber:cancel during starttls's handshake: cancelled, and the socket is closed", function()
    helper.run(function()
      local go = coronet.ivar()
      local server, port = late_tls_server(go)
      local sock, r, w = helper.connect(port)
      local fiber = counted(function() return sock:starttls(starttls_client()) end)
      fiber:cancel()
      helper.failed_with("cancelled", fiber:join(t(5)))
      go:fill() -- the server's handshake now meets a closed peer
      closed_after_failure(sock, r, w)
      helper.await(server:close(), 5)
    end)
  end)

  it("a switch failing during tcp.connect's handshake cancels it and leaves nothing open", function()
    helper.run(function()
      local go = coronet.ivar()
      local server, port = late_tls_server(go)
      local result
      local ok, err = pcall(switch.run, function(sw)
        sw:fork(function() result = table.pack(tcp.connect(to_localhost(port), { tls = client_tls() })) end)
        coronet.sleep(t(0.05))
        error("stop", 0)
      end)
      assert.is_false(ok)
      assert.matches("^stop", tostring(err))
      assert.are.equal("cancelled", result[3])
      go:fill()
      helper.await(server:close(), 5)
    end)
  end)

  it("handshake_timeout of starttls: timeout, then the socket is closed", function()
    helper.run(function()
      local go = coronet.ivar()
      local server, port = late_tls_server(go)
      local sock, r, w = helper.connect(port)
      local started = coronet.now()
      helper.failed_with("timeout", sock:starttls(starttls_client({ handshake_timeout = t(0.2) })))
      assert.is_true(coronet.now() - started >= t(0.15))
      closed_after_failure(sock, r, w)
      local sock0, r0, w0 = helper.connect(port) -- a timeout of 0: over before it starts
      helper.failed_with("timeout", sock0:starttls(starttls_client({ handshake_timeout = 0 })))
      closed_after_failure(sock0, r0, w0)
      go:fill()
      helper.await(server:close(), 5)
    end)
  end)

  it("a failed handshake (verification) closes the socket: every later call says closed", function()
    helper.run(function()
      local go = coronet.ivar()
      go:fill()
      local server, port = late_tls_server(go)
      local sock, r, w = helper.connect(port)
      local _, err, code = sock:starttls(starttls_client({ server_name = "example.com" }))
      assert.are.equal("tls_verify", code)
      assert.matches("hostname mismatch", tostring(err), 1, true)
      closed_after_failure(sock, r, w)
      helper.await(server:close(), 5)
    end)
  end)

  it("reads and writes made in other fibers during the handshake go through TLS once it is done", function()
    helper.run(function()
      local go = coronet.ivar()
      local server, port = late_tls_server(go)
      local sock, r, w = helper.connect(port)
      local starting = counted(function() return sock:starttls(starttls_client()) end)
      local reading = counted(function() return r:read_line({ timeout = t(5) }) end)
      assert(w:write("early\n")) -- held until the handshake is done
      go:fill()
      assert.is_true(starting:join(t(5)))
      assert.are.equal("early", reading:join(t(5)))
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("a write held by a handshake that times out or is cancelled fails at once; the close does not wait", function()
    helper.run(function()
      local go = coronet.ivar()
      local server, port = late_tls_server(go)
      for _, stop in ipairs({ "timeout", "cancelled" }) do
        local sock, _, w = helper.connect(port, { close_timeout = t(10) })
        local starting = counted(function()
          return sock:starttls(starttls_client({ handshake_timeout = stop == "timeout" and t(0.2) or nil }))
        end)
        assert(w:write("held\n"))
        if stop == "cancelled" then starting:cancel() end
        helper.failed_with(stop, starting:join(t(5)))
        local started = coronet.now()
        assert.is_true(sock:close_finished(t(5)))
        assert.is_true(coronet.now() - started < t(2), "the close waited for close_timeout")
        helper.failed_with("closed", w:write("more\n"))
      end
      go:fill()
      helper.await(server:close(), 5)
    end)
  end)

  it("cancel and a timeout of a TLS read are not sticky and consume nothing", function()
    helper.run(function()
      local go = coronet.ivar()
      local server, port = tls_echo_server(nil, function(_, r, w)
        go.deferred:wait()
        w:write("first\nsecond\n")
        r:contents()
      end)
      local sock, r = tls_client(port)
      local reading = counted(function() return r:read_line({ timeout = t(5) }) end)
      reading:cancel()
      helper.failed_with("cancelled", reading:join(t(5)))
      helper.failed_with("timeout", r:read_line({ timeout = t(0.05) }))
      go:fill()
      assert.are.equal("first", r:read_line({ timeout = t(5) }))
      assert.are.equal("second", r:read_line({ timeout = t(5) }))
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("cancel and a timeout of a TLS write waiting for room take none of its bytes", function()
    helper.run(function()
      local big = string.rep("b", 16 * 1024 * 1024)
      local go = coronet.ivar()
      local server, port = tls_echo_server(nil, function(_, r, w)
        go.deferred:wait()
        local data = r:really_read(#big + 3, { timeout = t(30) })
        w:write(data and data:sub(-3) == "end" and "ok\n" or "short\n")
      end)
      local sock, r, w = tls_client(port, nil, { writer_buffer_size = 64 * 1024 })
      assert(w:write(big))
      local writing = counted(function() return w:write(big) end)
      writing:cancel()
      helper.failed_with("cancelled", writing:join(t(5)))
      sock:settimeouts(nil, t(0.05))
      helper.failed_with("timeout", w:write(big))
      go:fill()
      assert(w:write("end"))
      assert.are.equal("ok", r:read_line({ timeout = t(30) }))
      sock:close()
      helper.await(server:close())
    end, 60)
  end)

  it("another fiber closing the socket during a TLS write waiting for room wakes it with closed", function()
    helper.run(function()
      local hold = coronet.ivar()
      local server, port = tls_echo_server(nil, function() hold.deferred:wait() end)
      local sock, _, w = tls_client(port, nil, { writer_buffer_size = 64 * 1024 })
      local big = string.rep("c", 16 * 1024 * 1024)
      assert(w:write(big))
      local writing = counted(function() return w:write(big) end)
      sock:close()
      helper.failed_with("closed", writing:join(t(5)))
      hold:fill()
      helper.await(server:close(), 5)
    end)
  end)
end)

-- A proxy from its clients to port relaying both ways; once `cut` is
-- filled, the next chunk from the server goes to `tamper(chunk, psock)`
-- instead, and the relay stops. Returns proxy, proxy_port.
local function tampering_proxy(port, cut, tamper)
  return helper.server(function(_, psock)
    local upstream = assert(tcp.connect_sock(helper.to(port)))
    coronet.spawn(function() psock:copy_to(upstream) end)
    local from, to = upstream:reader(), psock:writer()
    while true do
      local chunk = from:read(64 * 1024, { timeout = t(10) })
      if not chunk then break end
      if cut.filled then
        tamper(chunk, psock)
        break
      end
      assert(to:write(chunk))
    end
    upstream:close()
    psock:close()
  end, { halves = false })
end

-- Through a tampering proxy to a TLS echo server: a line goes through,
-- then the server's answer to a 10 KB line is tampered with. Returns the
-- client's read results.
local function read_tampered(tamper)
  local cut = coronet.ivar()
  local server, port = tls_echo_server()
  local proxy, proxy_port = tampering_proxy(port, cut, tamper)
  local sock, r, w = tls_client(proxy_port)
  assert(w:write("hello\n"))
  assert.are.equal("hello", r:read_line({ timeout = t(5) })) -- the tickets came before it
  cut:fill()
  assert(w:write(string.rep("x", 10000), "\n"))
  local results = table.pack(r:read_line({ timeout = t(5) }))
  sock:close()
  helper.await(proxy:close(), 5)
  helper.await(server:close(), 5)
  return table.unpack(results, 1, results.n)
end

-- The first TLS record a coronet client sends (its ClientHello), as bytes.
local function captured_client_hello()
  local hello = coronet.ivar()
  local server, port = helper.server(function(_, r)
    local header = assert(r:peek(5, { timeout = t(5) }))
    hello:fill(r:really_read(5 + (header:byte(4) << 8 | header:byte(5)), { timeout = t(5) }))
    r:socket():abort()
  end)
  assert.is_nil((tcp.connect(to_localhost(port), { tls = client_tls() })))
  helper.await(server:close())
  return hello.deferred:wait()
end

local function one_of(set, value) return set[value] == true end

describe("TLS peers that reset, stall, trickle or lie", function()
  it("a server that resets right after the handshake: the client's read fails at once, nothing left open", function()
    helper.run(function()
      local server, port = tls_echo_server(nil, function(_, r) r:socket():abort() end)
      local sock, r = tls_client(port)
      local data, err, code = r:read_line({ timeout = t(5) })
      assert.is_nil(data)
      assert.is_true(one_of({ ECONNRESET = true, tls_truncated = true }, code), tostring(err))
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("half a TLS record then a reset: ECONNRESET; half a record then a FIN: tls_truncated", function()
    helper.run(function()
      local function half(chunk, psock)
        psock:writer():write(chunk:sub(1, #chunk // 2))
        psock:writer():flush()
      end
      helper.failed_with("ECONNRESET", read_tampered(function(chunk, psock)
        half(chunk, psock)
        coronet.sleep(t(0.05))
        psock:abort()
      end))
      local _, err = read_tampered(half)
      helper.failed_with("tls_truncated", read_tampered(half))
      assert.are.equal("tls", err.kind)
      assert.matches("(tls_truncated): the peer closed the connection without close_notify", tostring(err), 1, true)
    end)
  end)

  it("a record with a huge length after the handshake: tls_protocol, OpenSSL's reason in the message", function()
    helper.run(function()
      local data, err, code = read_tampered(function(_, psock)
        psock:writer():write("\23\3\3\255\255", string.rep("\0", 64))
        psock:writer():flush()
        coronet.sleep(t(0.2))
      end)
      assert.is_nil(data)
      assert.are.equal("tls_protocol", code)
      assert.matches("TLS protocol error (tls_protocol): packet length too long", tostring(err), 1, true)
    end)
  end)

  it("a record altered in flight: tls_protocol naming the bad record MAC", function()
    helper.run(function()
      local data, err, code = read_tampered(function(chunk, psock)
        local i = #chunk // 2
        psock:writer():write(chunk:sub(1, i - 1), string.char(chunk:byte(i) ~ 1), chunk:sub(i + 1))
        psock:writer():flush()
        coronet.sleep(t(0.2))
      end)
      assert.is_nil(data)
      assert.are.equal("tls_protocol", code)
      assert.matches("bad record mac", tostring(err), 1, true)
    end)
  end)

  it("a server that resets mid-handshake: the client's connect fails, nothing left open", function()
    helper.run(function()
      local server, port = helper.server(function(_, r)
        r:read(64 * 1024, { timeout = t(5) }) -- the ClientHello
        r:socket():abort()
      end)
      local sock, err, code = tcp.connect(to_localhost(port), { tls = client_tls() })
      assert.is_nil(sock)
      assert.is_true(one_of({ ECONNRESET = true, tls_handshake = true }, code), tostring(err))
      helper.await(server:close())
    end)
  end)

  it("clients that reset after their ClientHello, or send it and go silent, end only their own connection", function()
    helper.run(function()
      local hello = captured_client_hello()
      local server, port = tls_echo_server({ handshake_timeout = t(0.3) })
      local resetting, _, rw = helper.connect(port)
      assert(rw:write(hello))
      assert(rw:flush())
      resetting:abort()
      local silent, sr, sw = helper.connect(port)
      assert(sw:write(hello))
      local started = coronet.now()
      round_trip(port) -- served meanwhile
      local answer, _, code = sr:contents({ timeout = t(5) }) -- the server's flight, then its close
      assert.is_nil(code)
      assert.is_true(#answer > 0)
      assert.is_true(coronet.now() - started >= t(0.25))
      silent:close()
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      round_trip(port)
      helper.await(server:close())
    end)
  end)

  it("half a ClientHello then a reset or a FIN ends that handshake at once, not at handshake_timeout", function()
    helper.run(function()
      local hello = captured_client_hello()
      local server, port = tls_echo_server({ handshake_timeout = t(30) })
      for _, ending in ipairs({ "abort", "close" }) do
        local sock, _, w = helper.connect(port)
        assert(w:write(hello:sub(1, #hello // 2)))
        assert(w:flush())
        assert.is_true(helper.eventually(function() return server:num_connections() == 1 end))
        sock[ending](sock)
        assert.is_true(helper.eventually(function() return server:num_connections() == 0 end, 5), ending)
      end
      round_trip(port)
      helper.await(server:close())
    end)
  end)

  it("a handshake and a line trickled one byte at a time each way arrive whole", function()
    helper.run(function()
      local server, port = tls_echo_server()
      local function trickle(from, to)
        while true do
          local chunk = from:reader():read(64 * 1024)
          if not chunk then return end
          for i = 1, #chunk do
            if not (to:writer():write(chunk:sub(i, i)) and to:writer():flush()) then return end
          end
        end
      end
      local proxy, proxy_port = helper.server(function(_, psock)
        local upstream = assert(tcp.connect_sock(helper.to(port)))
        local up = coronet.spawn(trickle, psock, upstream)
        trickle(upstream, psock)
        up:join(t(10))
        upstream:close()
        psock:close()
      end, { halves = false })
      local sock, r, w = tls_client(proxy_port)
      assert(w:write("trickled\n"))
      assert.are.equal("trickled", r:read_line({ timeout = t(10) }))
      assert.is_true(sock:tls_info().verified)
      sock:close()
      helper.await(proxy:close(), 10)
      helper.await(server:close())
    end, 30)
  end)

  it("a record header with a huge length instead of a ClientHello, or of a ServerHello, fails that handshake only", function()
    helper.run(function()
      local server, port = tls_echo_server()
      local sock, r, w = helper.connect(port)
      assert(w:write("\22\3\1\255\255", string.rep("\1", 64)))
      local _, _, code = r:contents({ timeout = t(5) })
      assert.is_true(code == nil or code == "ECONNRESET", tostring(code))
      sock:close()
      round_trip(port)
      local liar, liar_port = helper.server(function(_, lr, lw)
        lr:read(64 * 1024, { timeout = t(5) })
        lw:write("\22\3\3\255\255", string.rep("\2", 64))
        lr:contents({ timeout = t(5) })
      end)
      local none, err, ccode = tcp.connect(to_localhost(liar_port), { tls = client_tls() })
      assert.is_nil(none)
      assert.are.equal("tls_handshake", ccode)
      assert.matches("packet length too long", tostring(err), 1, true)
      helper.await(liar:close())
      helper.await(server:close())
    end)
  end)
end)

describe("TLS with openssl s_client changing keys", function()
  -- s_client in its interactive mode (neither -quiet nor -ign_eof), where a
  -- line "K" or "k" sends a TLS 1.3 KeyUpdate and "R" asks for a TLS 1.2
  -- renegotiation; its stdout and stderr are one stream here.
  local function s_client(port, extra)
    return assert(process.spawn("sh", { "-c", "exec env -u LD_PRELOAD openssl s_client -connect 127.0.0.1:" .. port
      .. " -CAfile " .. cert("ca.pem") .. " -verify_return_error -servername localhost " .. (extra or "") .. " 2>&1" }))
  end

  -- Reads s_client's output up to a line containing `want`; false at its end.
  local function await_line(out, want)
    while true do
      local line = out:read_line({ timeout = t(10) })
      if line == nil then return false end
      if line:find(want, 1, true) then return true end
    end
  end

  it("key updates (K, k) in TLS 1.3 leave the stream whole both ways", function()
    helper.run(function()
      local server, port = tls_echo_server()
      local proc, stdin, stdout = s_client(port)
      local out = stdout:reader()
      assert(stdin:write("line 0\n"))
      assert.is_true(await_line(out, "line 0"))
      for i, command in ipairs({ "K", "k", "K" }) do
        assert(stdin:write(command, "\n"))
        assert.is_true(await_line(out, "KEYUPDATE"))
        coronet.sleep(t(0.1)) -- s_client drops the rest of a read that holds a command
        assert(stdin:write("line ", i, "\n"))
        assert.is_true(await_line(out, "line " .. i))
      end
      stdin:close()
      assert.are.equal(0, proc:wait(t(10)))
      stdout:close()
      proc:close()
      helper.await(server:close())
    end, 30)
  end)

  it("a TLS 1.2 renegotiation request (R) is refused (no_renegotiation); the server goes on serving", function()
    helper.run(function()
      local server, port = tls_echo_server()
      local proc, stdin, stdout = s_client(port, "-tls1_2")
      local out = stdout:reader()
      assert(stdin:write("before\n"))
      assert.is_true(await_line(out, "before"))
      assert(stdin:write("R\n"))
      assert.is_true(await_line(out, "RENEGOTIATING"))
      assert.is_true(await_line(out, "no renegotiation")) -- s_client takes the refusal as fatal
      proc:wait(t(10))
      stdin:close()
      stdout:close()
      proc:close()
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end, 5))
      round_trip(port)
      helper.await(server:close())
    end, 30)
  end)
end)
describe("TLS under the pump and the age limit", function()
  it("copy_to from a TLS socket to a plain one and back (a TLS-terminating proxy) moves 1 MiB whole", function()
    helper.run(function()
      local blob = string.rep("0123456789abcde\n", 64 * 1024)
      local backend, backend_port = helper.server(function(_, r, w)
        local data = r:really_read(#blob, { timeout = t(10) })
        if data then w:write(data) end
      end)
      local proxy, proxy_port = tls_echo_server(nil, function(_, psock)
        local upstream = assert(tcp.connect_sock(helper.to(backend_port)))
        local up = coronet.spawn(function() return psock:copy_to(upstream) end)
        upstream:copy_to(psock)
        up:join(t(10))
        upstream:close()
      end, { halves = false })
      local sock, r, w = tls_client(proxy_port)
      assert(w:write(blob))
      assert.are.equal(blob, r:really_read(#blob, { timeout = t(10) }))
      sock:close()
      helper.await(proxy:close(), 5)
      helper.await(backend:close(), 5)
    end, 30)
  end)

  it("the buffer age limit expiring on a write held by a stalled handshake ends the handshake", function()
    helper.run(function()
      local go = coronet.ivar()
      local server, port = late_tls_server(go)
      local sock, _, w = helper.connect(port, { buffer_age_limit = t(0.2) })
      local starting = counted(function() return sock:starttls(starttls_client()) end)
      assert(w:write("held\n"))
      local _, _, code = starting:join(t(5))
      assert.is_true(code == "closed" or code == "stalled", tostring(code))
      assert.is_true(sock:close_finished(t(5)))
      go:fill()
      helper.await(server:close(), 5)
    end)
  end)
end)

describe("a TLS reader with a tiny buffer", function()
  it("a line longer than the cap gives line_too_long; every byte is still read in order", function()
    helper.run(function()
      local long = string.rep("L", 1000)
      local got = coronet.ivar()
      local server, port = tls_echo_server(nil, function(_, r)
        local _, _, code = r:read_line({ timeout = t(5) })
        local parts, total = {}, 0
        while total < #long + 7 do
          local piece = r:read(64, { timeout = t(5) })
          if not piece then break end
          parts[#parts + 1] = piece
          total = total + #piece
        end
        got:fill({ code = code, data = table.concat(parts) })
      end, { reader_buffer_size = 64 })
      local sock, _, w = tls_client(port)
      assert(w:write(long, "\nshort\n"))
      local result = got.deferred:wait(t(5))
      assert.are.equal("line_too_long", result.code)
      assert.are.equal(long .. "\nshort\n", result.data)
      sock:close()
      helper.await(server:close())
    end)
  end)
end)

describe("a TLS socket closed by its reader inside the read event", function()
  it("close and abort right after the first of many decrypted lines leave nothing open", function()
    helper.run(function()
      local lines = string.rep("some line of text\n", 2000)
      local server, port = tls_echo_server(nil, function(_, r, w)
        r:read_line({ timeout = t(5) })
        w:write(lines)
        r:contents({ timeout = t(5) })
      end)
      for _, ending in ipairs({ "close", "abort", "close", "abort" }) do
        local sock, r, w = tls_client(port)
        assert(w:write("go\n"))
        -- This read waits: the TLS layer's delivery wakes it, and the close runs inside that delivery.
        assert.are.equal("some line of text", r:read_line({ timeout = t(5) }))
        sock[ending](sock)
        -- (After an abort, as on a plain socket, the bytes already buffered stay readable.)
        local line, _, code
        repeat line, _, code = r:read_line() until not line
        assert.are.equal("closed", code)
      end
      helper.await(server:close(), 5)
    end)
  end)
end)

describe("a TLS half-close", function()
  it("a client that closes its writer (close_notify) still reads the server's answer, then a clean end", function()
    helper.run(function()
      local server, port = tls_echo_server(nil, function(_, r, w)
        local request, _, code = r:contents({ timeout = t(5) })
        w:write(code and "error " .. code .. "\n" or "got " .. #request .. "\n")
      end)
      local sock, r, w = tls_client(port)
      assert(w:write("request"))
      w:close()
      assert.are.equal("got 7", r:read_line({ timeout = t(5) }))
      assert.are.equal("closed", select(3, r:read_line({ timeout = t(5) })))
      sock:close()
      helper.await(server:close())
    end)
  end)
end)

describe("a TLS server closed with handshakes pending", function()
  it("ends them, and leaves nothing open", function()
    helper.run(function()
      local server, port = tls_echo_server()
      local silent = {}
      for i = 1, 5 do silent[i] = helper.connect(port) end -- no ClientHello
      local connecting = counted(function()
        return tcp.connect(to_localhost(port), { tls = client_tls() })
      end)
      helper.await(server:close(), 5)
      local sock = connecting:join(t(5))
      if sock then sock:close() end
      for _, s in ipairs(silent) do s:close() end
    end)
  end)
end)

describe("starttls misuse", function()
  it("twice on one socket, or while another fiber's starttls runs, raises naming the call", function()
    helper.run(function()
      local go = coronet.ivar()
      local server, port = late_tls_server(go)
      local sock, r, w = helper.connect(port)
      local first = counted(function() return sock:starttls(starttls_client()) end)
      assert.has_error(function() sock:starttls(starttls_client()) end, "socket:starttls: the socket has TLS already")
      go:fill()
      assert.is_true(first:join(t(5)))
      assert.has_error(function() sock:starttls(starttls_client()) end, "socket:starttls: the socket has TLS already")
      assert(w:write("still fine\n"))
      assert.are.equal("still fine", r:read_line({ timeout = t(5) }))
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("on a closed socket: nil, err, closed", function()
    helper.run(function()
      local server, port = helper.server(function(_, r) r:contents() end)
      local sock = helper.connect(port)
      sock:close()
      helper.failed_with("closed", sock:starttls(starttls_client()))
      assert.is_nil(sock:tls_info())
      helper.await(server:close())
    end)
  end)

  it("while a reader waits in another fiber: busy, and the plain socket goes on working", function()
    helper.run(function()
      local server, port = helper.server(helper.echo)
      local sock, r, w = helper.connect(port)
      local reading = counted(function() return r:read_line({ timeout = t(5) }) end)
      helper.failed_with("busy", sock:starttls(starttls_client()))
      assert.is_nil(sock:tls_info())
      assert(w:write("plain\n"))
      assert.are.equal("plain", reading:join(t(5)))
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("bytes buffered before it are the TLS engine's first input: a hello is used, junk fails the handshake", function()
    helper.run(function()
      local results = {}
      local server, port = helper.server(function(_, r, w)
        assert.are.equal("STARTTLS", r:read_line({ timeout = t(5) }))
        assert(helper.eventually(function() return r:buffered() > 0 end, 5)) -- the client's next bytes came
        local buffered = r:buffered()
        local ok, _, code = r:socket():starttls(starttls_server())
        results[#results + 1] = { buffered = buffered, ok = ok, code = code }
        if ok then w:write("secret\n") end
      end)
      local sock, r, w = helper.connect(port)
      assert(w:write("STARTTLS\n"))
      assert(w:flush())
      assert.is_true(sock:starttls(starttls_client()))
      assert.are.equal("secret", r:read_line({ timeout = t(5) }))
      sock:close()
      local junk, _, jw = helper.connect(port)
      assert(jw:write("STARTTLS\nthis is not a TLS record\n"))
      assert(jw:flush())
      assert(helper.eventually(function() return #results == 2 end, 5))
      junk:close()
      assert.is_true(results[1].buffered > 0)
      assert.is_true(results[1].ok)
      assert.is_true(results[2].buffered > 0)
      assert.are.equal("tls_handshake", results[2].code)
      helper.await(server:close())
    end)
  end)
end)

describe("TLS, the collector and the end of the Lua state", function()
  it("sockets dropped mid-handshake (a cancelled starttls, a cancelled connect) are collected; the peers end", function()
    helper.run(function()
      local go = coronet.ivar()
      local server, port = late_tls_server(go)
      do
        local sock = helper.connect(port)
        local starting = counted(function() return sock:starttls(starttls_client()) end)
        local connecting = counted(function() return tcp.connect(to_localhost(port), { tls = client_tls() }) end)
        starting:cancel()
        connecting:cancel()
        collectgarbage()
        helper.failed_with("cancelled", starting:join(t(5)))
        helper.failed_with("cancelled", connecting:join(t(5)))
      end
      for _ = 1, 3 do
        collectgarbage()
        coronet.sleep(0.01)
      end
      go:fill()
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end, 5))
      helper.await(server:close())
    end)
  end)

  it("a Lua state closed with client and server handshakes and TLS reads in flight", function()
    local script = ([[
      local coronet = require "coronet"
      local tcp = coronet.tcp
      local tls = { cert_file = %q, key_file = %q }
      local client = { ca_file = %q }
      coronet.run(function()
        local where = tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0))
        local server = assert(tcp.Server.create(where, function(_, r) r:read_line() end, { tls = tls }))
        local silent = assert(tcp.Server.create(where, function(_, r) r:read_line() end))
        local function to(s) return tcp.Where_to_connect.of_host_and_port("localhost", s:listening_on()) end
        for _ = 1, 3 do
          tcp.connect_sock(to(server)) -- plain: the server's handshake waits for a hello
          coronet.spawn(tcp.connect, to(silent), { tls = client }) -- the client's handshake waits
          coronet.spawn(function() -- a TLS read waits
            local _, r = assert(tcp.connect(to(server), { tls = client }))
            r:read_line()
          end)
          coronet.spawn(function()
            local sock = assert(tcp.connect_sock(to(silent)))
            sock:starttls({ ca_file = client.ca_file, server_name = "localhost" })
          end)
        end
        coronet.sleep(0.2)
        print("closing")
        io.stdout:flush()
        os.exit(0, true)
      end)
      print("not reached")
    ]]):format(cert("server.pem"), cert("server.key"), cert("ca.pem"))
    local out, status = helper.child(script)
    assert.is_truthy(out:find("closing"), out)
    assert.is_falsy(out:find("not reached"), out)
    assert.are.equal(0, status, out)
  end)
end)

describe("many TLS handshakes at once", function()
  -- Under GC stress (a full collection at every allocation) a fifth of them.
  local clients_n, max_n = 200, 50
  if helper.gc_stress then clients_n, max_n = 40, 10 end

  it("200 concurrent clients against a TLS server with max_connections = 50: every one served", function()
    helper.run(function()
      local peak = 0
      local server, port
      server, port = tls_echo_server(nil, function(_, r, w)
        peak = math.max(peak, server:num_connections())
        helper.echo(_, r, w)
      end, { max_connections = max_n })
      local clients = {}
      for i = 1, clients_n do
        clients[i] = coronet.spawn(function()
          local sock, r, w = tcp.connect(to_localhost(port), { tls = client_tls({ handshake_timeout = t(30) }) })
          if not sock then return nil, r end
          w:write("client ", i, "\n")
          local line, err = r:read_line({ timeout = t(30) })
          sock:close()
          return line, err
        end)
      end
      for i, client in ipairs(clients) do
        local line, err = client:join(t(60))
        assert.are.equal("client " .. i, line, tostring(err))
      end
      assert.is_true(peak <= max_n, "peak " .. peak)
      helper.await(server:close(), 10)
    end, 120)
  end)
end)
