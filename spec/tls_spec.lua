-- spec/tls_spec.lua: TLS over coronet's sockets (lua/coronet/tls.lua,
-- csrc/binding/ltls.c, csrc/core/tls_transport.c over csrc/core/tls.c):
-- coronet against coronet, against clients no one here wrote (openssl
-- s_client, curl against examples/https_hello.lua) and against openssl
-- s_server; and every fault of issue #12's list. Certificates are made for
-- this run by spec/tls/make_certs.sh.
local helper = require "helper"
local coronet = require "coronet"

local tcp = coronet.tcp
local t = helper.t

local tls_fixture = require "tls_fixture"
local certificates = tls_fixture.certificates("tls-spec")
setup(certificates.make)
teardown(certificates.remove)
local cert, server_tls, client_tls = certificates.cert, certificates.server_tls, certificates.client_tls
local to_localhost, quiet_spawn = tls_fixture.to_localhost, tls_fixture.quiet_spawn

-- A TLS echo server; returns server, port.
local function tls_server(extra, handler)
  return helper.server(handler or helper.echo, { tls = server_tls(extra) })
end

-- One line through a fresh TLS connection to port; returns the socket's tls_info.
local function round_trip(port, opts)
  local sock, r, w = helper.connect(to_localhost(port), { tls = client_tls(opts) })
  assert(w:write("ping\n"))
  assert.are.equal("ping", r:read_line({ timeout = t(2) }))
  local info = sock:tls_info()
  sock:close()
  return info
end

describe("TLS between coronet clients and servers", function()
  it("echoes lines; tls_info tells version, cipher, ALPN, subject and verification on both sides", function()
    helper.run(function()
      local seen
      local server, port = tls_server({ alpn = { "h2", "http/1.1" } }, function(_, r, w)
        seen = r:socket():tls_info()
        helper.echo(_, r, w)
      end)
      local info = round_trip(port, { alpn = { "http/1.1", "imap" } })
      assert.are.equal("TLSv1.3", info.version)
      assert.is_string(info.cipher)
      assert.are.equal("http/1.1", info.alpn)
      assert.are.equal("CN=localhost", info.peer_subject)
      assert.is_true(info.verified)
      assert.is_false(info.reused)
      assert.are.equal("http/1.1", seen.alpn)
      assert.is_false(seen.peer_certificate)
      assert.is_nil(seen.session) -- a server has none to give
      helper.await(server:close())
    end)
  end)

  it("moves 1 MiB each way, whole and in order", function()
    helper.run(function()
      local blob = {}
      for i = 1, 1024 * 1024 / 16 do blob[i] = ("%15d\n"):format(i) end
      blob = table.concat(blob)
      local server, port = tls_server(nil, function(_, r, w)
        local data = assert(r:really_read(#blob, { timeout = t(10) }))
        assert(w:write(data))
      end)
      local _, r, w = helper.connect(to_localhost(port), { tls = client_tls() })
      assert(w:write(blob))
      assert.are.equal(blob, r:really_read(#blob, { timeout = t(10) }))
      assert.are.equal("closed", select(3, r:read_line({ timeout = t(2) })))
      r:socket():close()
      helper.await(server:close())
    end)
  end)

  it("resumes a session given back as session=", function()
    helper.run(function()
      local server, port = tls_server()
      local sock, r, w = helper.connect(to_localhost(port), { tls = client_tls() })
      assert(w:write("one\n"))
      assert.are.equal("one", r:read_line({ timeout = t(2) })) -- the ticket came before the answer
      local session = sock:tls_info().session
      sock:close()
      assert.is_string(session)
      local info = round_trip(port, { session = session })
      assert.is_true(info.reused)
      helper.await(server:close())
    end)
  end)

  it("an IP address is checked against the certificate's addresses", function()
    helper.run(function()
      local server, port = tls_server()
      local sock, r, w = helper.connect(port, { tls = client_tls() }) -- 127.0.0.1
      assert(w:write("ip\n"))
      assert.are.equal("ip", r:read_line({ timeout = t(2) }))
      assert.is_true(sock:tls_info().verified)
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("with client certificates required: a client with one is served, one without gets tls_verify", function()
    helper.run(function()
      local server, port = tls_server({ client_ca_file = cert("ca.pem") }, function(_, r, w)
        w:write(r:socket():tls_info().peer_subject, "\n")
      end)
      local _, r = helper.connect(to_localhost(port),
        { tls = client_tls({ cert_file = cert("client.pem"), key_file = cert("client.key") }) })
      assert.are.equal("CN=coronet test client", r:read_line({ timeout = t(2) }))
      r:socket():close()
      -- TLS 1.3: the client finishes first, and hears the refusal at its first read.
      local _, r2 = helper.connect(to_localhost(port), { tls = client_tls() })
      helper.failed_with("tls_verify", r2:read_line({ timeout = t(2) }))
      r2:socket():close()
      helper.await(server:close())
    end)
  end)
end)

describe("TLS socket lifetime", function()
  it("a TLS socket left to the collector closes gracefully (close_notify) and frees its engine", function()
    helper.run(function()
      local ended = coronet.ivar()
      local server, port = tls_server(nil, function(_, r)
        ended:fill(select(3, r:contents({ timeout = t(5) })))
      end)
      do
        local sock = helper.connect(to_localhost(port), { tls = client_tls() })
        assert.is_table(sock:tls_info())
      end
      collectgarbage()
      collectgarbage()
      local code = ended.deferred:wait(t(5))
      assert.is_nil(code) -- a graceful close: close_notify went out before the FIN
      helper.await(server:close())
    end)
  end)
end)

describe("TLS verification failures", function()
  local function refused(port, opts, reason)
    local sock, err, code = tcp.connect(to_localhost(port), { tls = client_tls(opts) })
    assert.is_nil(sock)
    assert.are.equal("tls_verify", code)
    assert.are.equal("tls", err.kind)
    assert.matches(reason, tostring(err), 1, true)
  end

  it("a wrong host name, an untrusted CA, an expired certificate: tls_verify with OpenSSL's reason", function()
    helper.run(function()
      local server, port = tls_server()
      local expired, expired_port = tls_server({ cert_file = cert("expired.pem"), key_file = cert("expired.key") })
      refused(port, { server_name = "example.com" }, "hostname mismatch")
      refused(port, { ca_file = cert("other_ca.pem") }, "unable to get local issuer certificate")
      refused(expired_port, nil, "certificate has expired")
      -- the server goes on serving good clients
      assert.are.equal("TLSv1.3", round_trip(port).version)
      helper.await(server:close())
      helper.await(expired:close())
    end)
  end)

  it("verify = false connects anyway, and tls_info says it was not verified", function()
    helper.run(function()
      local server, port = tls_server({ cert_file = cert("expired.pem"), key_file = cert("expired.key") })
      local info = round_trip(port, { verify = false, ca_file = cert("other_ca.pem"), server_name = "example.com" })
      assert.is_false(info.verified)
      assert.is_true(info.peer_certificate)
      helper.await(server:close())
    end)
  end)
end)

describe("TLS faults", function()
  it("Server.create with a missing key file or a key that does not match fails before any client", function()
    helper.run(function()
      local where = tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0))
      local function create(tls) return tcp.Server.create(where, helper.echo, { tls = tls }) end
      local server, err, code = create(server_tls({ key_file = cert("missing.key") }))
      assert.is_nil(server)
      assert.are.equal("tls_config", code)
      assert.matches(cert("missing.key") .. "': No such file or directory", tostring(err), 1, true)
      server, err, code = create(server_tls({ key_file = cert("wrong.key") }))
      assert.is_nil(server)
      assert.are.equal("tls_config", code)
      assert.matches("does not match cert_file", tostring(err), 1, true)
      server, err, code = create(server_tls({ cert_file = cert("garbage.pem") }))
      assert.is_nil(server)
      assert.are.equal("tls_config", code)
    end)
  end)

  it("garbage instead of a ClientHello closes that connection only", function()
    helper.run(function()
      local server, port = tls_server()
      local sock, r, w = helper.connect(port) -- plain
      assert(w:write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"))
      local rest, _, code = r:contents({ timeout = t(2) })
      assert.is_nil(code) -- the server closed it (after its alert)
      assert.is_string(rest)
      sock:close()
      assert.are.equal("TLSv1.3", round_trip(port).version)
      helper.await(server:close())
    end)
  end)

  it("a client stalling mid-handshake is closed after handshake_timeout, and others are served meanwhile", function()
    helper.run(function()
      local server, port = tls_server({ handshake_timeout = t(0.3) })
      local stalled, r = helper.connect(port) -- plain: sends no ClientHello
      local started = coronet.now()
      assert.are.equal("TLSv1.3", round_trip(port).version) -- not delayed by the stalled one
      local data, _, code = r:contents({ timeout = t(3) })
      assert.are.equal("", data)
      assert.is_nil(code)
      assert.is_true(coronet.now() - started >= 0.25)
      stalled:close()
      helper.await(server:close())
    end)
  end)

  it("a client whose server never answers gives up after handshake_timeout, leaving nothing open", function()
    helper.run(function()
      local hold = coronet.ivar()
      local server, port = helper.server(function() hold.deferred:wait() end) -- plain, silent
      local started = coronet.now()
      helper.failed_with("timeout", tcp.connect(to_localhost(port), { tls = client_tls({ handshake_timeout = t(0.2) }) }))
      assert.is_true(coronet.now() - started >= 0.15)
      hold:fill()
      helper.await(server:close())
    end)
  end)

  it("a socket closed by another fiber while its handshake waits: starttls returns closed", function()
    helper.run(function()
      local hold = coronet.ivar()
      local server, port = helper.server(function() hold.deferred:wait() end)
      local sock = helper.connect(port)
      coronet.spawn(function()
        coronet.sleep(t(0.05))
        sock:close()
      end)
      helper.failed_with("closed", sock:starttls(client_tls({ server_name = "localhost" })))
      hold:fill()
      helper.await(server:close())
    end)
  end)

  it("close_notify reads as a clean end; a cut without it is tls_truncated", function()
    helper.run(function()
      local server, port = tls_server(nil, function(_, _, w) w:write("last\n") end) -- then closes: close_notify
      local sock, r = helper.connect(to_localhost(port), { tls = client_tls() })
      assert.are.equal("last", r:read_line({ timeout = t(2) }))
      assert.are.equal("closed", select(3, r:read_line({ timeout = t(2) })))
      sock:close()
      -- A proxy in the middle that passes the TLS bytes, then cuts the
      -- client off with a plain FIN: no close_notify came.
      local cut = coronet.ivar()
      local proxy, proxy_port = helper.server(function(_, psock)
        local upstream = assert(tcp.connect_sock(helper.to(port)))
        coronet.spawn(function() psock:copy_to(upstream) end)
        coronet.spawn(function() upstream:copy_to(psock) end)
        cut.deferred:wait()
        psock:close()
        upstream:close()
      end, { halves = false })
      local sock2, r2 = helper.connect(to_localhost(proxy_port), { tls = client_tls() })
      cut:fill()
      local data, err, code = r2:contents({ timeout = t(2) })
      assert.is_nil(data)
      assert.are.equal("tls_truncated", code)
      assert.are.equal("tls", err.kind)
      sock2:close()
      helper.await(proxy:close())
      helper.await(server:close())
    end)
  end)
end)

describe("TLS under the reader's and writer's contracts", function()
  it("a peer that never reads: the writer yields at its mark, then the age limit ends it with stalled", function()
    helper.run(function()
      local result, max_pending = coronet.ivar(), 0
      local server, port = helper.server(function(_, _, w)
        local piece = string.rep("p", 64 * 1024)
        while true do
          local ok, _, code = w:write(piece)
          max_pending = math.max(max_pending, w:pending())
          if not ok then return result:fill(code) end
        end
      end, { tls = server_tls(), writer_buffer_size = 256 * 1024, buffer_age_limit = t(0.5) })
      local sock = helper.connect(to_localhost(port), { tls = client_tls() }) -- handshakes, then never reads
      assert.are.equal("stalled", result.deferred:wait(t(10)))
      assert.is_true(max_pending <= 256 * 1024 + 64 * 1024, "pending grew to " .. max_pending)
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      sock:close()
      helper.await(server:close())
    end, 20)
  end)

  it("a read timeout consumes nothing; the line that comes later is read whole", function()
    helper.run(function()
      local go = coronet.ivar()
      local server, port = tls_server(nil, function(_, _, w)
        go.deferred:wait()
        w:write("late line\n")
        w:flushed()
      end)
      local sock, r = helper.connect(to_localhost(port), { tls = client_tls() })
      helper.failed_with("timeout", r:read_line({ timeout = t(0.1) }))
      go:fill()
      assert.are.equal("late line", r:read_line({ timeout = t(5) }))
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("another fiber closing a TLS socket wakes its waiting reader with closed", function()
    helper.run(function()
      local server, port = tls_server(nil, function(_, r) r:read_line() end)
      local sock, r = helper.connect(to_localhost(port), { tls = client_tls() })
      local reading = coronet.spawn(function() return select(3, r:read_line({ timeout = t(5) })) end)
      coronet.sleep(t(0.05))
      sock:close()
      assert.are.equal("closed", reading:join(t(5)))
      helper.await(server:close())
    end)
  end)

  it("one 8 MiB write and a trickle of 1-byte writes arrive whole and in order", function()
    helper.run(function()
      local big = string.rep("0123456789abcdef", 512 * 1024)
      local server, port = tls_server(nil, function(_, r, w)
        local data = assert(r:really_read(#big + 100, { timeout = t(20) }))
        w:write(#data == #big + 100 and data == big .. string.rep("x", 100) and "ok\n" or "bad\n")
      end)
      local sock, r, w = helper.connect(to_localhost(port), { tls = client_tls() })
      assert(w:write(big))
      for _ = 1, 100 do assert(w:write("x")) w:flushed() end
      assert.are.equal("ok", r:read_line({ timeout = t(20) }))
      sock:close()
      helper.await(server:close())
    end, 40)
  end)
end)

describe("socket:starttls", function()
  it("upgrades a plain connection on both sides; bytes already buffered reach the TLS engine", function()
    helper.run(function()
      local server, port = helper.server(function(_, r, w)
        assert.are.equal("STARTTLS", r:read_line({ timeout = t(2) }))
        -- The client's hello may already sit in this reader's buffer.
        assert(r:socket():starttls(server_tls({ server = true })))
        assert(w:write("secret: ", r:read_line({ timeout = t(2) }), "\n"))
      end)
      local sock, r, w = helper.connect(port)
      assert(w:write("STARTTLS\n"))
      assert(w:flush())
      assert(sock:starttls(client_tls({ server_name = "localhost" })))
      assert(w:write("hello\n"))
      assert.are.equal("secret: hello", r:read_line({ timeout = t(2) }))
      assert.is_true(sock:tls_info().verified)
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("misuse raises naming the call: a verifying client without server_name, unknown or mistyped options", function()
    helper.run(function()
      local server, port = helper.server(function(_, r) r:contents() end)
      local sock = helper.connect(port)
      assert.has_error(function() sock:starttls({ ca_file = cert("ca.pem") }) end,
        "socket:starttls: a client that verifies needs server_name (or verify = false)")
      assert.has_error(function() sock:starttls({ server_name = "x", verfy = false }) end,
        "socket:starttls: unknown client TLS option 'verfy'")
      assert.has_error(function() sock:starttls({ server_name = "x", verify = "no" }) end,
        "socket:starttls: TLS option 'verify' must be a boolean (got string)")
      assert.is_nil(sock:tls_info())
      sock:close()
      helper.await(server:close())
    end)
  end)
end)

describe("TLS in coronet.net", function()
  it("run_server with tls serves with_tcp_connect with tls; a bad key fails run_server at once", function()
    helper.run(function()
      local net = require "coronet.net"
      local listening = assert(net.listen(coronet.address("127.0.0.1", 0)))
      local port = listening:getsockname().port
      local stop = coronet.ivar()
      local served = coronet.spawn(net.run_server, listening, function(flow)
        flow:write("hello ", flow:tls_info().version, "\n")
      end, { stop = stop.deferred, tls = server_tls() })
      local line = net.with_tcp_connect("localhost", port, function(flow)
        return flow:reader():read_line({ timeout = t(2) })
      end, { tls = client_tls() })
      assert.are.equal("hello TLSv1.3", line)
      local flow = assert(net.connect(coronet.address("127.0.0.1", port), { tls = client_tls() }))
      assert.are.equal("hello TLSv1.3", flow:reader():read_line({ timeout = t(2) }))
      flow:close()
      stop:fill("done")
      assert.are.equal("done", served:join())
      helper.failed_with("tls_config", net.run_server(listening, print, { tls = server_tls({ key_file = cert("wrong.key") }) }))
      listening:close()
    end)
  end)

  it("run_server with tls and workers: every worker state handshakes with its own context", function()
    helper.run(function()
      local net = require "coronet.net"
      local listening = assert(net.listen(coronet.address("127.0.0.1", 0), { reuse_port = true }))
      local port = listening:getsockname().port
      local stop = coronet.ivar()
      local served = coronet.spawn(net.run_server, listening, "net_workers_fixture:flow_echo",
        { workers = 2, stop = stop.deferred, tls = server_tls() })
      local clients = {}
      for i = 1, 24 do
        clients[i] = coronet.spawn(function()
          local flow = assert(net.connect(coronet.address("127.0.0.1", port), { tls = client_tls() }))
          flow:write("client ", i, "\n")
          local line = flow:reader():read_line({ timeout = t(5) })
          flow:close()
          return line
        end)
      end
      for i, client in ipairs(clients) do assert.are.equal("client " .. i, client:join(t(10))) end
      stop:fill("done")
      local value, stats = served:join(t(10))
      assert.are.equal("done", value)
      assert.are.equal(24, stats.accepted)
      -- a bad key fails before any worker starts; a context object cannot cross states
      helper.failed_with("tls_config", net.run_server(listening, "net_workers_fixture:flow_echo",
        { workers = 2, tls = server_tls({ key_file = cert("wrong.key") }) }))
      local ctx = assert(require("coronet.tls").context(server_tls(), "server"))
      assert.has_error(function()
        net.run_server(listening, "net_workers_fixture:flow_echo", { workers = 2, tls = { context = ctx } })
      end, "coronet.net.run_server: a tls context cannot cross to worker states (pass the options)")
      listening:close()
    end, 30)
  end)
end)

describe("TLS with peers no one here wrote", function()
  it("openssl s_client talks to a coronet server", function()
    helper.run(function()
      local server, port = tls_server()
      local proc, stdin, stdout = assert(quiet_spawn("openssl s_client -connect 127.0.0.1:" .. port .. " -CAfile "
        .. cert("ca.pem") .. " -verify_return_error -servername localhost -quiet -no_ign_eof"))
      assert(stdin:write("hello from s_client\n"))
      assert.are.equal("hello from s_client", stdout:reader():read_line({ timeout = t(10) }))
      stdin:close() -- s_client then sends close_notify and exits
      assert.are.equal(0, proc:wait(t(10)))
      stdout:close()
      proc:close()
      helper.await(server:close())
    end, 20)
  end)

  it("curl --cacert gets examples/https_hello.lua's answer", function()
    helper.run(function()
      local root = io.popen("pwd"):read("l")
      local log = os.tmpname()
      local p = assert(io.popen(("cd / && { lua5.4 %s/examples/https_hello.lua 0 %s %s 2>%s & echo $!; }"):format(
        root, cert("server.pem"), cert("server.key"), log)))
      local pid = tonumber(p:read("l"))
      p:close()
      local port
      assert.is_true(helper.eventually(function()
        local f = io.open(log)
        port = f and tonumber((f:read("a") or ""):match("listening on port (%d+)"))
        if f then f:close() end
        return port ~= nil
      end, 5))
      local proc, _, stdout = assert(quiet_spawn("curl -sS --cacert " .. cert("ca.pem") .. " https://localhost:" .. port .. "/"))
      assert.are.equal("Hello, World!", stdout:reader():contents({ timeout = t(10) }))
      assert.are.equal(0, proc:wait(t(10)))
      stdout:close()
      proc:close()
      os.execute("kill -TERM " .. pid)
      os.remove(log)
    end, 20)
  end)

  it("a coronet client talks to openssl s_server", function()
    helper.run(function()
      local probe = helper.closed_port()
      local proc, stdin = assert(quiet_spawn("openssl s_server -accept 127.0.0.1:" .. probe .. " -cert "
        .. cert("server.pem") .. " -key " .. cert("server.key") .. " -naccept 1 -quiet"))
      local sock, r, w
      assert.is_true(helper.eventually(function()
        sock, r, w = tcp.connect(to_localhost(probe), { tls = client_tls() })
        return sock ~= nil
      end, 5))
      assert(w:write("from coronet\n"))
      assert(stdin:write("from s_server\n"))
      assert.are.equal("from s_server", r:read_line({ timeout = t(5) }))
      assert.is_true(sock:tls_info().verified)
      sock:close()
      stdin:close()
      proc:wait(t(5))
      proc:close()
    end, 20)
  end)
end)
