-- spec/net_adversary_spec.lua: coronet.net used as an adversary would: each
-- "Bad input and faults" case of issue 8 through the public API, misuse
-- (wrong types, closed objects, waits where no fiber can yield), peers that
-- reset or never read, racing fibers, and objects nobody closes.
local coronet = require "coronet"
local core = require "coronet.core"
local net = require "coronet.net"
local helper = require "helper"

local t = helper.t

local function ip4(port) return coronet.address("127.0.0.1", port or 0) end

local function listen(opts)
  local listening = assert(net.listen(ip4(), opts))
  return listening, listening:getsockname().port
end

local function close(obj)
  obj:close()
  assert(obj:close_finished(t(2)))
end

-- Descriptors open now; the least of three counts leaves out popen's own
-- pipe, which a child `ls` may still see. libuv opens one descriptor per
-- loop for good at the loop's first TCP handle (/dev/null, kept for its
-- EMFILE trick): one connection is made first so that it is not counted.
local warmed = false
local function open_fds()
  if not warmed then
    warmed = true
    helper.run(function()
      local listening = assert(net.listen(coronet.address("127.0.0.1", 0)))
      local flow = assert(net.connect(listening:getsockname()))
      flow:close()
      listening:close()
      assert(flow:close_finished() and listening:close_finished())
    end)
  end
  return math.min(helper.open_fds(), helper.open_fds(), helper.open_fds())
end

-- A client fiber that sends `line`, then returns everything it reads.
local function client(port, line)
  return coronet.spawn(function()
    local flow = assert(net.connect(ip4(port)))
    if line then flow:write(line, "\n") end
    local data = flow:reader():contents()
    close(flow)
    return data
  end)
end

local function echo_line(flow)
  local line = flow:reader():read_line()
  if line then flow:write(line, "\n") end
end

describe("coronet.net bad input", function()
  it("an unknown host is no_matching_addresses, and f is not called", function()
    helper.run(function()
      local called = false
      local r, err, code = net.with_tcp_connect("nowhere.invalid", 80, function() called = true end)
      assert.is_nil(r)
      assert.is_false(called)
      assert.are.equal("no_matching_addresses", err.kind)
      assert.truthy(code == "EAI_NONAME" or code == "EAI_AGAIN", code)
      local list, _, code2 = net.getaddrinfo("nowhere.invalid")
      assert.is_nil(list)
      assert.truthy(code2 == "EAI_NONAME" or code2 == "EAI_AGAIN", code2)
    end)
  end)

  it("an unknown service name is EAI_SERVICE", function()
    helper.run(function()
      local r, err, code = net.with_tcp_connect("127.0.0.1", "no-such-service-here", function() end)
      assert.is_nil(r)
      assert.are.equal("EAI_SERVICE", code)
      assert.are.equal("EAI_SERVICE", err.code)
      local list, _, code2 = net.getaddrinfo("localhost", { service = "no-such-service-here" })
      assert.is_nil(list)
      assert.are.equal("EAI_SERVICE", code2)
    end)
  end)

  it("a port outside 0..65535 raises, naming the port", function()
    helper.run(function()
      local f = function() end
      assert.has_error(function() net.with_tcp_connect("127.0.0.1", 65536, f) end,
        "coronet.net.with_tcp_connect: port 65536 is outside 0..65535")
      assert.has_error(function() net.with_tcp_connect("127.0.0.1", -1, f) end)
      assert.has_error(function() net.with_tcp_connect("127.0.0.1", "70000", f) end)
      assert.has_error(function() net.getaddrinfo("localhost", { service = 65536 }) end)
      assert.has_error(function() net.getaddrinfo("localhost", { service = "99999" }) end)
      assert.has_error(function() coronet.address("127.0.0.1", 65536) end)
    end)
  end)

  it("an address of the wrong family is EAFNOSUPPORT, and the socket stays usable", function()
    helper.run(function()
      local a = assert(net.datagram_socket(ip4()))
      local b = assert(net.datagram_socket(ip4()))
      local ok, err, code = a:send(coronet.address("::1", 9), "x")
      assert.is_nil(ok)
      assert.are.equal("EAFNOSUPPORT", code)
      assert.are.equal("EAFNOSUPPORT", err.code)
      assert.is_true(a:send(b:getsockname(), "still"))
      assert.are.equal("still", (b:recv(100, { timeout = t(2) })))
      close(a)
      close(b)
    end)
  end)

  it("a datagram over 64 KiB is EMSGSIZE, and the socket stays usable", function()
    helper.run(function()
      local a = assert(net.datagram_socket(ip4()))
      local b = assert(net.datagram_socket(ip4()))
      local ok, err, code = a:send(b:getsockname(), ("x"):rep(70000))
      assert.is_nil(ok)
      assert.are.equal("EMSGSIZE", code)
      assert.truthy(tostring(err):find("EMSGSIZE", 1, true) or tostring(err):find("too long", 1, true), tostring(err))
      assert.is_true(a:send(b:getsockname(), { "after", "wards" }))
      assert.are.equal("afterwards", (b:recv(100, { timeout = t(2) })))
      close(a)
      close(b)
    end)
  end)

  it("recv with maxlen < 1 raises, and leaves no waiter behind", function()
    helper.run(function()
      local a = assert(net.datagram_socket(ip4()))
      local b = assert(net.datagram_socket(ip4()))
      for _, bad in ipairs({ 0, -1, 1.5, "x" }) do
        assert.has_error(function() b:recv(bad) end)
      end
      assert.is_true(a:send(b:getsockname(), "ok"))
      assert.are.equal("ok", (b:recv(10, { timeout = t(2) })))
      close(a)
      close(b)
    end)
  end)

  it("a raising handler goes to on_error with the address; the server and an unrelated connection go on", function()
    local fds = open_fds()
    helper.run(function()
      local listening, port = listen()
      local errors_seen = {}
      local stop = coronet.ivar()
      local server = coronet.spawn(function()
        return net.run_server(listening, function(flow)
          local line = flow:reader():read_line()
          if line == "raise" then error("handler raised") end
          flow:write(line, "\n")
          flow:writer():flush()
          if line == "held" then flow:reader():contents() end
        end, { stop = stop.deferred, on_error = function(err, address)
          errors_seen[#errors_seen + 1] = { err = err, address = address }
        end })
      end)
      local held = assert(net.connect(ip4(port)))
      held:write("held\n")
      assert.are.equal("held", held:reader():read_line())
      client(port, "raise"):join(t(2))
      assert.are.equal(1, #errors_seen)
      assert.matches("handler raised", errors_seen[1].err)
      assert.are.equal("127.0.0.1", errors_seen[1].address.ip)
      assert.are.equal("after\n", client(port, "after"):join(t(2)))
      held:write("still\n")
      held:shutdown("send")
      close(held)
      stop:fill("done")
      assert.are.equal("done", server:join(t(2)))
      close(listening)
    end)
    assert.is_true(open_fds() <= fds, ("descriptors leaked: %d -> %d"):format(fds, open_fds()))
  end)

  it("a worker module that raises at load makes run_server raise naming it; one raising at call reaches on_error", function()
    helper.run(function()
      local listening, port = listen({ reuse_port = true })
      for _, workers in ipairs({ 1, 2 }) do
        local ok, err = pcall(net.run_server, listening, "net_adversary_bad_load:serve", { workers = workers })
        assert.is_false(ok)
        assert.truthy(tostring(err):find("net_adversary_bad_load", 1, true), tostring(err))
        assert.truthy(tostring(err):find("raised at load time", 1, true), tostring(err))
      end
      assert.are.equal(0, listening:stats().accepted)
      assert.is_false(listening:is_closed())
      close(listening)

      listening, port = listen({ reuse_port = true })
      local seen = {}
      local stop = coronet.ivar()
      local server = coronet.spawn(function()
        return net.run_server(listening, "net_adversary_fixture:raise", { workers = 2, stop = stop.deferred,
          on_error = function(err) seen[#seen + 1] = err end })
      end)
      for _ = 1, 4 do client(port, "x"):join(t(5)) end
      assert.is_true(helper.eventually(function() return #seen == 4 end, 5))
      for _, err in ipairs(seen) do
        assert.are.equal("adversary", err.code)
        assert.is_number(err.worker)
        assert.are.equal("127.0.0.1", err.address.ip)
      end
      stop:fill("stopped")
      local value, stats = server:join(t(5))
      assert.are.equal("stopped", value)
      assert.are.equal(4, stats.handler_errors)
      close(listening)
    end, 20)
  end)
end)

describe("coronet.net misuse", function()
  it("wrong types raise, naming the function", function()
    helper.run(function()
      local listening = listen()
      local f = function() end
      local cases = {
        { "connect", function() net.connect("127.0.0.1:80") end },
        { "connect", function() net.connect(ip4(1), 5) end },
        { "connect", function() net.connect(ip4(1), { timeout = -1 }) end },
        { "connect", function() net.connect(ip4(1), { sw = {} }) end },
        { "listen", function() net.listen("127.0.0.1") end },
        { "listen", function() net.listen(ip4(), { backlog = -1 }) end },
        { "accept", function() net.accept({}) end },
        { "accept", function() net.accept(nil) end },
        { "accept_fork", function() net.accept_fork(listening, "handler") end },
        { "accept_fork", function() net.accept_fork(listening, f, { on_error = 1 }) end },
        { "run_server", function() net.run_server(listening, nil) end },
        { "run_server", function() net.run_server(listening, f, "opts") end },
        { "run_server", function() net.run_server(listening, f, { max_connections = 0 }) end },
        { "run_server", function() net.run_server(listening, f, { workers = 1.5 }) end },
        { "listen", function() net.listen(ip4(), { sw = {} }) end },
        { "accept", function() net.accept(listening, { sw = 1 }) end },
        { "accept_fork", function() net.accept_fork(listening, f, { sw = true }) end },
        { "datagram_socket", function() net.datagram_socket(ip4(), { sw = 5 }) end },
        { "datagram_socket", function() net.datagram_socket(42) end },
        { "datagram_socket", function() net.datagram_socket("udp5") end },
        { "getaddrinfo", function() net.getaddrinfo(42) end },
        { "getnameinfo", function() net.getnameinfo("127.0.0.1") end },
        { "with_tcp_connect", function() net.with_tcp_connect(nil, 80, f) end },
        { "with_tcp_connect", function() net.with_tcp_connect("localhost", 80, nil) end },
        { "with_tcp_connect", function() net.with_tcp_connect("localhost", {}, f) end },
        { "with_tcp_connect", function() net.with_tcp_connect("localhost", 80, f, { addresses = {} }) end },
      }
      local live = core.live()
      for _, case in ipairs(cases) do
        local ok, err = pcall(case[2])
        assert.is_false(ok, case[1])
        assert.truthy(tostring(err):find(case[1], 1, true), case[1] .. ": " .. tostring(err))
        assert.are.equal(live, core.live(), case[1] .. " raised with a new object open")
      end
      close(listening)
    end)
  end)

  it("closed objects give nil, err, \"closed\"; nothing raises or hangs", function()
    helper.run(function()
      local listening, port = listen()
      local flow = assert(net.connect(ip4(port)))
      local accepted = assert(net.accept(listening))
      local udp = assert(net.datagram_socket(ip4()))
      close(flow)
      close(accepted)
      close(udp)
      close(listening)
      assert.are.same({ nil, "closed" }, { select(1, flow:read()), select(3, flow:read()) })
      assert.are.equal("closed", select(3, flow:write("x")))
      assert.are.equal("closed", select(3, udp:send(ip4(9), "x")))
      assert.are.equal("closed", select(3, udp:recv(10)))
      assert.are.equal("closed", select(3, net.accept(listening)))
      assert.are.equal("closed", select(3, net.accept_fork(listening, function() end)))
      assert.are.equal("closed", select(3, net.run_server(listening, function() end)))
      assert.are.equal("closed", select(3, net.run_server(listening, function() end, { workers = 2 })))
      close(listening)
    end)
  end)

  it("waiting outside a fiber raises naming coronet.spawn", function()
    local ok, err = pcall(net.getaddrinfo, "localhost")
    assert.is_false(ok)
    assert.matches("coronet.spawn", err)
    ok, err = pcall(net.connect, ip4(9))
    assert.is_false(ok)
    assert.matches("coronet.spawn", err)
    helper.assert_clean()
  end)

  it("waiting in a table.sort comparator or a coroutine.wrap raises and leaves nothing behind", function()
    helper.run(function()
      local listening, port = listen()
      local udp = assert(net.datagram_socket(ip4()))
      local waits = {
        function() return net.accept(listening) end,
        function() return udp:recv(10) end,
        function() return net.getaddrinfo("localhost") end,
        function() return net.connect(ip4(port)) end,
        function() return net.run_server(listening, echo_line) end,
      }
      for i, wait in ipairs(waits) do
        local ok, err = pcall(table.sort, { 1, 2, 3 }, function() wait() return false end)
        assert.is_false(ok, "table.sort " .. i)
        assert.is_string(tostring(err))
        ok, err = pcall(coroutine.wrap(wait))
        assert.is_false(ok, "coroutine.wrap " .. i)
        assert.matches("coronet.spawn", tostring(err))
      end
      -- the listener has no stale waiter: the next client goes to the next accept
      local c = client(port, "next")
      local flow = assert(net.accept(listening))
      echo_line(flow)
      close(flow)
      assert.are.equal("next\n", c:join(t(2)))
      assert.are.equal(1, listening:stats().accepted)
      close(udp)
      close(listening)
    end)
  end)
end)

describe("coronet.net faults", function()
  it("copy_to returns connection_reset, with the bytes copied, when its source resets", function()
    helper.run(function()
      local listening, port = listen()
      local sink_listening, sink_port = listen()
      local src_client = assert(net.connect(ip4(port)))
      local src = assert(net.accept(listening))
      local dst = assert(net.connect(ip4(sink_port)))
      local sink = assert(net.accept(sink_listening))
      local copy = coronet.spawn(function() return src:copy_to(dst) end)
      src_client:write(("a"):rep(1000))
      src_client:writer():flush()
      assert.are.equal(1000, #sink:reader():really_read(1000))
      src_client:abort()
      local copied, err, code = copy:join(t(2))
      assert.is_nil(copied)
      assert.are.equal("ECONNRESET", code)
      assert.are.equal("connection_reset", err.kind)
      assert.are.equal(1000, err.copied)
      for _, obj in ipairs({ src_client, src, dst, sink, listening, sink_listening }) do close(obj) end
    end)
  end)

  it("copy_to returns the destination's reset, with the bytes copied, and leaves the source readable", function()
    helper.run(function()
      local listening, port = listen()
      local sink_listening, sink_port = listen()
      local src_client = assert(net.connect(ip4(port)))
      local src = assert(net.accept(listening))
      local dst = assert(net.connect(ip4(sink_port)))
      local sink = assert(net.accept(sink_listening))
      local copy = coronet.spawn(function() return src:copy_to(dst) end)
      src_client:write("first")
      src_client:writer():flush()
      assert.are.equal("first", sink:reader():really_read(5))
      sink:abort()
      local copied, err, code
      local producer = coronet.spawn(function()
        while not copied and not err do
          if not src_client:write(("b"):rep(4096)) then return end
          src_client:writer():flush()
          coronet.sleep(t(0.01))
        end
      end)
      copied, err, code = copy:join(t(2))
      assert.is_nil(copied)
      assert.truthy(code == "ECONNRESET" or code == "EPIPE", code)
      assert.are.equal("connection_reset", err.kind)
      assert.is_true(err.copied >= 5)
      producer:join(t(2))
      assert(src_client:write("more"))
      src_client:writer():flush()
      assert.is_string((src:read()))
      for _, obj in ipairs({ src_client, src, dst, sink, listening, sink_listening }) do close(obj) end
    end)
  end)

  it("copy_to to a destination that never reads holds bounded memory and stalls its source", function()
    helper.run(function()
      local listening, port = listen()
      local sink_listening, sink_port = listen()
      local src_client = assert(net.connect(ip4(port)))
      local src = assert(net.accept(listening))
      local dst = assert(net.connect(ip4(sink_port)))
      local sink = assert(net.accept(sink_listening)) -- never read
      local total = 64 * 1024 * 1024
      local sent = 0
      local chunk = ("z"):rep(64 * 1024)
      local producer = coronet.spawn(function()
        while sent < total do
          if not src_client:write(chunk) then return end
          sent = sent + #chunk
        end
      end)
      local copy = coronet.spawn(function() return src:copy_to(dst) end)
      coronet.sleep(t(0.3))
      local pending = dst:writer():pending()
      assert.is_true(sent < total, "the source never stalled")
      assert.is_true(pending <= dst:writer():hwm() + 2 * #chunk, "pending " .. pending)
      local before_mem = collectgarbage("count")
      coronet.sleep(t(0.2))
      assert.is_true(collectgarbage("count") - before_mem < 4096, "Lua memory grows while stalled")
      copy:cancel()
      producer:cancel()
      local _, err, code = copy:join(t(2))
      assert.are.equal("cancelled", code)
      assert.is_number(err.copied)
      for _, obj in ipairs({ src_client, src, dst, sink }) do obj:abort() end
      close(listening)
      close(sink_listening)
    end)
  end)

  it("run_server ends with closed when a handler closes the listening socket; that connection finishes", function()
    helper.run(function()
      local listening, port = listen()
      local server = coronet.spawn(function()
        return net.run_server(listening, function(flow)
          listening:close()
          echo_line(flow)
        end)
      end)
      assert.are.equal("last\n", client(port, "last"):join(t(2)))
      local r, _, code = server:join(t(2))
      assert.is_nil(r)
      assert.are.equal("closed", code)
      assert.is_true(listening:close_finished(t(2)))
      local refused = select(3, net.connect(ip4(port)))
      assert.are.equal("ECONNREFUSED", refused)
    end)
  end)

  it("two fibers accepting on one listener are both served, in the order they called", function()
    helper.run(function()
      local listening, port = listen()
      local order = {}
      local acceptors = {}
      for i = 1, 2 do
        acceptors[i] = coronet.spawn(function()
          local flow = assert(net.accept(listening))
          order[#order + 1] = i
          echo_line(flow)
          close(flow)
        end)
        coronet.sleep(0)
      end
      local c1 = client(port, "one")
      assert.are.equal("one\n", c1:join(t(2)))
      local c2 = client(port, "two")
      assert.are.equal("two\n", c2:join(t(2)))
      for _, a in ipairs(acceptors) do a:join(t(2)) end
      assert.are.same({ 1, 2 }, order)
      close(listening)
    end)
  end)

  it("Happy Eyeballs with every address refused lists every attempt, each refused", function()
    helper.run(function()
      local ports = { helper.closed_port(), helper.closed_port(), helper.closed_port() }
      local addresses = { ip4(ports[1]), coronet.address("::1", ports[2]), ip4(ports[3]) }
      local r, err, code = net.with_tcp_connect("localhost", 0, function() end,
        { addresses = addresses, happy_eyeballs = { delay = t(0.05) } })
      assert.is_nil(r)
      assert.are.equal("ECONNREFUSED", code)
      assert.are.equal("refused", err.kind)
      assert.are.equal(3, #err.attempts)
      local tried = {}
      for _, attempt in ipairs(err.attempts) do
        assert.are.equal("ECONNREFUSED", attempt.code)
        tried[tostring(attempt.address)] = true
      end
      for _, addr in ipairs(addresses) do assert.is_true(tried[tostring(addr)], tostring(addr)) end
    end)
  end)

  it("a datagram recv whose fiber is cancelled mid-wait leaves the socket to the next recv", function()
    helper.run(function()
      local a = assert(net.datagram_socket(ip4()))
      local b = assert(net.datagram_socket(ip4()))
      local waiting = coronet.spawn(function() return b:recv(100) end)
      coronet.sleep(t(0.02))
      waiting:cancel()
      assert.are.equal("cancelled", select(3, waiting:join(t(2))))
      assert.is_true(a:send(b:getsockname(), "second"))
      local data, from = b:recv(100, { timeout = t(2) })
      assert.are.equal("second", data)
      assert.are.equal(a:getsockname().port, from.port)
      close(a)
      close(b)
    end)
  end)

  it("a cancelled getaddrinfo is detached; the next lookup works", function()
    helper.run(function()
      local live = core.live()
      local lookup = coronet.spawn(function() return net.getaddrinfo("localhost") end)
      lookup:cancel()
      assert.are.equal("cancelled", select(3, lookup:join(t(2))))
      local list = assert(net.getaddrinfo("127.0.0.1", { service = 80 }))
      assert.are.equal(80, list[1].port)
      assert.is_true(helper.eventually(function() return core.live() == live end))
    end)
  end)

  it("run_server's stop filled twice: the second fill raises, the server returns the first value", function()
    helper.run(function()
      local listening = listen()
      local stop = coronet.ivar()
      local server = coronet.spawn(function() return net.run_server(listening, echo_line, { stop = stop.deferred }) end)
      coronet.sleep(0)
      stop:fill("first")
      assert.has_error(function() stop:fill("second") end)
      assert.are.equal("first", server:join(t(2)))
      assert.is_false(listening:is_closed())
      close(listening)
    end)
  end)
end)

describe("coronet.net objects nobody closes", function()
  it("listening and datagram sockets dropped without close are closed by the collector, leaking no descriptor", function()
    local fds = open_fds()
    helper.run(function()
      for _ = 1, 10 do
        listen()
        assert(net.datagram_socket(ip4()))
      end
      collectgarbage()
      collectgarbage()
      assert.is_true(helper.eventually(function()
        collectgarbage()
        return core.live() == 0
      end), "left open: " .. core.live())
    end)
    assert.is_true(open_fds() <= fds, ("descriptors leaked: %d -> %d"):format(fds, open_fds()))
  end)

  it("a switch's resources are closed by the end of coronet.run, its fiber still waiting", function()
    local fds = open_fds()
    local made = {}
    helper.run(function()
      coronet.spawn(function()
        coronet.switch(function(sw)
          made[1] = listen({ sw = sw })
          made[2] = assert(net.datagram_socket(ip4(), { sw = sw }))
          made[3] = assert(net.connect(ip4(made[1]:getsockname().port), { sw = sw }))
          coronet.sleep(t(60))
        end)
      end)
      assert.is_true(helper.eventually(function() return made[3] ~= nil end))
    end)
    for _, obj in ipairs(made) do assert.is_true(obj:is_closed()) end
    assert.is_true(open_fds() <= fds, ("descriptors leaked: %d -> %d"):format(fds, open_fds()))
  end)
end)
