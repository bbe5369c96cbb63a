-- coronet.connection (Procord): connections, states, receive buffers,
-- timeouts and pings, sets and waiters. Polling code runs outside any fiber
-- (as a game loop would) or inside helper.run (where update only takes the
-- snapshot and wait yields).
local coronet = require "coronet"
local core = require "coronet.core"
local connection = require "coronet.connection"
local helper = require "spec.helper"

local t = helper.t
local settle, poll_until, polling_echo_server = helper.settle, helper.poll_until, helper.polling_echo_server

local function connected(conn) return conn:state() == "connected" end
local function disconnected(conn) return conn:state() == "disconnected" end

describe("coronet.connection", function()
  it("loads as require 'coronet.connection' and as coronet.connection", function()
    assert.equal(connection, coronet.connection)
    assert.equal(require "coronet.connection.sync", connection.sync)
    for _, name in ipairs { "connect", "custom", "update", "state", "alive", "send", "receive", "receive_poll",
      "receive_poll_part", "receive_all", "receive_part", "receive_forget", "receive_buffer_length",
      "receive_buffer_empty", "receive_line", "close", "close_nicely", "remote_address", "make_address", "data",
      "timeout", "listen", "empty_set", "accept_into_set", "update_set", "iter", "waiter",
      "waiter_of_listening_socket", "waiter_of_set", "waiter_custom", "waiter_of_list", "wait", "wait_",
      "instanciate_waiter" } do
      assert.is_function(connection[name], name)
    end
  end)

  describe("outside any fiber (a polling program)", function()
    after_each(settle)

    it("connect returns at once in state connecting, then a polled echo round trip works", function()
      local listening, set, tick = polling_echo_server()
      local conn = connection.connect("127.0.0.1", listening:getsockname().port, "my data")
      assert.equal("connecting", conn:state())
      assert.is_true(conn:alive())
      assert.equal("my data", conn:data())
      assert.is_nil(conn:timeout())
      assert.is_true(conn:send("sent while connecting\n"))
      local line
      local deadline = coronet.now() + t(3)
      repeat
        tick()
        conn:update()
        line = conn:receive_line()
        if not line then
          connection.wait(connection.waiter_of_list { connection.waiter(conn), connection.waiter_of_set(set),
            connection.waiter_of_listening_socket(listening) }, { timeout = 0.05 })
        end
      until line or coronet.now() > deadline
      assert.equal("sent while connecting", line)
      assert.equal("connected", conn:state())
      assert.equal(1, #set)
      assert.equal("127.0.0.1", conn:remote_address().ip)
      conn:close()
      assert.equal("disconnected", conn:state())
      assert.is_false(conn:alive())
      assert.is_nil(select(2, conn:state()))
      -- the server sees the EOF and its set drops the connection
      local deadline2 = coronet.now() + t(3)
      while #set > 0 and coronet.now() < deadline2 do
        tick()
        connection.wait(connection.waiter_of_set(set), { timeout = 0.05 })
      end
      assert.equal(0, #set)
      listening:close()
    end)

    it("a refused connect ends disconnected with ECONNREFUSED, kind refused, op connect and the host", function()
      local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
      local port = listening:getsockname().port
      listening:close()
      coronet.step(0)
      local conn = connection.connect("127.0.0.1", port, nil)
      poll_until(conn, disconnected)
      local state, err, code = conn:state()
      assert.equal("disconnected", state)
      assert.equal("ECONNREFUSED", code)
      assert.equal("refused", err.kind)
      assert.equal("connect", err.op)
      assert.equal("127.0.0.1", err.arg)
      assert.is_false(conn:alive())
      assert.is_true(conn:send("ignored"))
      conn:update() -- a no-op on a disconnected connection
      assert.equal("disconnected", conn:state())
      assert.is_true(connection.wait(connection.waiter(conn), { timeout = 5 })) -- returns at once
    end)

    it("the snapshot changes only at update", function()
      local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
      local conn = connection.connect("127.0.0.1", listening:getsockname().port, nil)
      for _ = 1, 20 do coronet.step(0.01) end -- the loop runs, the connect completes
      assert.equal("connecting", conn:state())
      conn:update()
      assert.equal("connected", conn:state())
      conn:close()
      listening:close()
    end)

    it("wait returns false at its timeout and true at an event", function()
      local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
      local conn = connection.connect("127.0.0.1", listening:getsockname().port, nil)
      poll_until(conn, connected)
      local waiter = connection.waiter(conn)
      local started = coronet.now()
      assert.is_false(connection.wait(waiter, { timeout = 0.1 }))
      assert.is_true(coronet.now() - started >= 0.09)
      local set = connection.empty_set()
      assert.is_true(connection.wait(connection.waiter_of_listening_socket(listening), { timeout = t(2) }))
      assert.equal(1, connection.accept_into_set(listening, function() return true end, set))
      local server_side = set.members[1]
      server_side:send("ping\n")
      assert.is_true(connection.wait(waiter, { timeout = t(2) }))
      conn:update()
      poll_until(conn, function(c) return c:receive_buffer_length() == 5 end)
      assert.equal("ping", conn:receive_line())
      assert.is_nil(connection.wait_(waiter, { timeout = 0 }))
      conn:close()
      server_side:close()
      listening:close()
    end)

    it("instanciate_waiter gives coronet's loop descriptor and the listening socket, for a host's select", function()
      local socket = require "socket"
      local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
      local read, write, except = connection.instanciate_waiter(connection.waiter_of_list {
        connection.waiter_of_listening_socket(listening) })
      assert.equal(coronet.backend_fd(), read[1])
      assert.equal(listening:fileno(), read[2])
      assert.same({}, write)
      assert.same({ listening:fileno() }, except)
      local function wrap(fds)
        local list = {}
        for i, fd in ipairs(fds) do list[i] = { getfd = function() return fd end, dirty = function() return false end } end
        return list
      end
      -- nothing pending: the host's select times out
      local r = socket.select(wrap(read), nil, 0.05)
      assert.equal(0, #r)
      -- a LuaSocket client connects: the listening descriptor turns readable
      local client = assert(socket.connect("127.0.0.1", listening:getsockname().port))
      r = socket.select(wrap(read), nil, t(2))
      assert.is_true(#r >= 1)
      local set = connection.empty_set()
      assert.equal(1, connection.accept_into_set(listening, function() return true end, set))
      -- the LuaSocket client sends: the loop descriptor turns readable, update moves the bytes
      client:send("hello from luasocket\n")
      local line
      local deadline = coronet.now() + t(2)
      repeat
        socket.select(wrap({ coronet.backend_fd() }), nil, math.min(coronet.backend_timeout() or 0.05, 0.05))
        set:update()
        line = set.members[1]:receive_line()
      until line or coronet.now() > deadline
      assert.equal("hello from luasocket", line)
      client:close()
      set.members[1]:close()
      listening:close()
    end)
  end)

  describe("a custom waiter on the program's own descriptors", function()
    after_each(settle)

    it("waits for a LuaSocket socket to turn readable, outside and inside a fiber", function()
      local socket = require "socket"
      local server = assert(socket.bind("127.0.0.1", 0))
      local ip, port = server:getsockname()
      local client = assert(socket.connect(ip, port))
      local peer = assert(server:accept())
      local waiter = connection.waiter_custom({ read = { math.tointeger(client:getfd()) } })
      assert.is_false(connection.wait(waiter, { timeout = 0.05 }))
      peer:send("x")
      assert.is_true(connection.wait(waiter, { timeout = t(2) }))
      assert.equal("x", client:receive(1))
      -- the same from a fiber: the wait yields while another fiber makes the event
      helper.run(function()
        coronet.spawn(function()
          coronet.sleep(0.05)
          peer:send("y")
        end)
        assert.is_true(connection.wait(waiter, { timeout = t(2) }))
      end)
      assert.equal("y", client:receive(1))
      local read = connection.instanciate_waiter(connection.waiter_of_list { waiter })
      assert.same({ coronet.backend_fd(), math.tointeger(client:getfd()) }, read)
      client:close()
      peer:close()
      server:close()
    end)
  end)

  describe("receiving", function()
    -- A connected pair inside helper.run whose server writes `data` and
    -- keeps the connection open until released; returns conn, release.
    local function receiving(data, opts)
      local release = coronet.ivar()
      local _, port = helper.server(function(_, _, w)
        w:write(data)
        release.deferred:wait()
      end)
      local conn = connection.connect("127.0.0.1", port, nil, opts)
      assert.is_true(connection.wait(connection.waiter(conn), { timeout = t(2) }))
      assert(helper.eventually(function() return conn:receive_buffer_length() == #data end))
      return conn, function() release:fill() end
    end

    it("receive, receive_poll, receive_poll_part, receive_part, receive_forget, receive_all", function()
      helper.run(function()
        local conn, release = receiving("0123456789")
        assert.is_false(conn:receive_buffer_empty())
        assert.is_nil(conn:receive(11))
        assert.equal("", conn:receive(0))
        assert.equal("234", conn:receive_poll(2, 3))
        assert.is_nil(conn:receive_poll(8, 3))
        assert.is_nil(conn:receive_poll(10, 1))
        assert.equal("", conn:receive_poll(10, 0))
        assert.equal("89", conn:receive_poll_part(8, 5))
        assert.equal("", conn:receive_poll_part(10, 5))
        assert.equal("", conn:receive_poll_part(42, 5))
        assert.equal(10, conn:receive_buffer_length())
        assert.equal("012", conn:receive(3))
        assert.equal("34", conn:receive_part(2))
        assert.equal(2, conn:receive_forget(2))
        assert.equal("7", conn:receive_poll(0, 1))
        assert.equal("789", conn:receive_part(100))
        assert.equal("", conn:receive_part(1))
        assert.equal(0, conn:receive_forget(5))
        assert.equal("", conn:receive_all())
        assert.is_true(conn:receive_buffer_empty())
        conn:close()
        release()
      end)
    end)

    it("receive_forget with fewer bytes buffered forgets them and returns the count", function()
      helper.run(function()
        local conn, release = receiving("abc")
        assert.equal(3, conn:receive_forget(10))
        assert.equal(0, conn:receive_buffer_length())
        conn:close()
        release()
      end)
    end)

    it("receive_line: nil until whole, then the line without \\n and one \\r", function()
      helper.run(function()
        local conn, release = receiving("one\r\ntwo\r\r\nthree")
        assert.equal("one", conn:receive_line())
        assert.equal("two\r", conn:receive_line())
        assert.is_nil(conn:receive_line())
        assert.equal("three", conn:receive_all())
        conn:close()
        release()
      end)
    end)

    it("negative and non-integer lengths and offsets raise; nothing is consumed", function()
      helper.run(function()
        local conn, release = receiving("abc")
        assert.has_error(function() conn:receive(-1) end)
        assert.has_error(function() conn:receive(1.5) end)
        assert.has_error(function() conn:receive("1") end)
        assert.has_error(function() conn:receive_poll(-1, 1) end)
        assert.has_error(function() conn:receive_poll(0, -1) end)
        assert.has_error(function() conn:receive_poll_part(-1, 1) end)
        assert.has_error(function() conn:receive_part(-2) end)
        assert.has_error(function() conn:receive_forget(-2) end)
        assert.has_error(function() connection.receive({}, 1) end)
        assert.has_error(function() conn:send(42) end)
        assert.equal("abc", conn:receive_all())
        conn:close()
        release()
      end)
    end)

    it("after the peer's EOF: disconnected (closed, op read), and what was buffered is still received", function()
      helper.run(function()
        local _, port = helper.server(function(_, _, w) w:write("last words\npartial") end)
        local conn = connection.connect("127.0.0.1", port, nil)
        assert(helper.eventually(function()
          conn:update()
          return conn:state() == "disconnected"
        end))
        local _, err, code = conn:state()
        assert.equal("closed", code)
        assert.equal("read", err.op)
        assert.equal("127.0.0.1", err.arg)
        assert.equal("last words", conn:receive_line())
        assert.equal("par", conn:receive_poll(0, 3))
        assert.equal("partial", conn:receive_all())
        assert.is_true(conn:receive_buffer_empty())
      end)
    end)

    it("the receive buffer is bounded: reading pauses until the program consumes", function()
      helper.run(function()
        local total = 512 * 1024
        local _, port = helper.server(function(_, _, w) w:write(string.rep("x", total)) end)
        local cap = 16 * 1024
        local conn = connection.connect("127.0.0.1", port, nil, { receive_buffer_size = cap })
        local got = 0
        while got < total do
          connection.wait(connection.waiter(conn), { timeout = t(1) })
          assert.is_true(conn:receive_buffer_length() <= cap)
          coronet.sleep(0.001)
          assert.is_true(conn:receive_buffer_length() <= cap)
          got = got + #conn:receive_part(4096)
        end
        assert.equal(total, got)
        conn:close()
      end)
    end)
  end)

  describe("sending", function()
    -- A server that accepts and never reads; returns its port and a release function.
    local function never_reading()
      local hold = coronet.ivar()
      local _, port = helper.server(function() hold.deferred:wait() end)
      return port, function() hold:fill() end
    end

    it("past send_buffer_size, send returns busy without taking the data", function()
      helper.run(function()
        local port, release = never_reading()
        local conn = connection.connect("127.0.0.1", port, nil, { send_buffer_size = 1000 })
        assert.is_true(conn:send(string.rep("a", 600)))
        helper.failed_with("busy", conn:send(string.rep("b", 600)))
        assert.is_true(conn:send(string.rep("c", 400)))
        conn:close()
        release()
      end)
    end)

    it("bytes sent while connecting arrive, in order, once connected", function()
      helper.run(function()
        local _, port, received = helper.recording_server()
        local conn = connection.connect("127.0.0.1", port, nil)
        for i = 1, 100 do assert.is_true(conn:send(i .. ",")) end
        conn:close_nicely()
        assert.equal("disconnecting", conn:state())
        local data = received:wait(t(2))
        local expected = {}
        for i = 1, 100 do expected[i] = i .. "," end
        assert.equal(table.concat(expected), data)
        assert(helper.eventually(function()
          conn:update()
          return conn:state() == "disconnected"
        end))
        assert.is_nil(select(2, conn:state())) -- a completed close_nicely is a local close
      end)
    end)

    it("close_nicely closes anyway at its timeout when the peer never reads", function()
      helper.run(function()
        local port, release = never_reading()
        local conn = connection.connect("127.0.0.1", port, nil, { send_buffer_size = 64 * 1024 * 1024 })
        assert(helper.eventually(function()
          conn:update()
          return conn:state() == "connected"
        end))
        assert.is_true(conn:send(string.rep("z", 32 * 1024 * 1024)))
        local started = coronet.now()
        conn:close_nicely({ timeout = t(0.3) })
        assert.equal("disconnecting", conn:state())
        assert.is_true(conn:alive())
        assert(helper.eventually(function()
          conn:update()
          return conn:state() == "disconnected"
        end, 3))
        local elapsed = coronet.now() - started
        assert.is_true(elapsed >= t(0.25), elapsed)
        assert.is_true(elapsed < t(2), elapsed)
        release()
      end)
    end)
  end)

  describe("idle timeout and ping", function()
    it("a ping after timeout/2 of silence (not before 0.45 x timeout), and at most one per silent period", function()
      helper.run(function()
        local timeout = t(0.6)
        local arrivals = {}
        local started
        local _, port = helper.server(function(_, r, w)
          started = coronet.now()
          while true do
            local line = r:read_line()
            if not line then return end
            arrivals[#arrivals + 1] = { line = line, at = coronet.now() - started }
            -- the first two pings get an answer, which restarts both clocks;
            -- then silence: one more ping, then the idle timeout
            if #arrivals <= 2 then w:write("pong\n") end
          end
        end)
        local conn = connection.connect("127.0.0.1", port, nil, { timeout = timeout, ping = "PING\n" })
        assert.equal(timeout, conn:timeout())
        assert(helper.eventually(function()
          conn:update()
          return conn:state() == "disconnected"
        end, 10))
        assert.equal(3, #arrivals)
        assert.equal("PING", arrivals[1].line)
        assert.is_true(arrivals[1].at >= 0.45 * timeout, arrivals[1].at)
        assert.is_true(arrivals[1].at <= timeout, arrivals[1].at)
        assert.is_true(arrivals[2].at - arrivals[1].at >= 0.45 * timeout)
        assert.is_true(arrivals[3].at - arrivals[2].at >= 0.45 * timeout)
        local _, err, code = conn:state()
        assert.equal("timeout", code)
        assert.equal("idle", err.op)
      end)
    end)

    it("a silent peer is disconnected by the timeout, and not before it", function()
      helper.run(function()
        local hold = coronet.ivar()
        local _, port = helper.server(function() hold.deferred:wait() end)
        local timeout = t(0.3)
        local conn = connection.connect("127.0.0.1", port, nil, { timeout = timeout })
        local started = coronet.now()
        assert(helper.eventually(function()
          conn:update()
          return conn:state() == "disconnected"
        end, 5))
        local elapsed = coronet.now() - started
        assert.is_true(elapsed >= 0.9 * timeout, elapsed)
        local _, err, code = conn:state()
        assert.equal("timeout", code)
        assert.equal("idle", err.op)
        hold:fill()
      end)
    end)

    it("a peer that talks often enough is never disconnected", function()
      helper.run(function()
        local stop = false
        local _, port = helper.server(function(_, _, w)
          while not stop do
            w:write("tick\n")
            coronet.sleep(t(0.05))
          end
        end)
        local conn = connection.connect("127.0.0.1", port, nil, { timeout = t(0.2), ping = "P" })
        coronet.sleep(t(0.8))
        conn:update()
        assert.equal("connected", conn:state())
        stop = true
        conn:close()
      end)
    end)

    it("an empty ping, a bad timeout and bad options raise", function()
      assert.has_error(function() connection.connect("127.0.0.1", 1, nil, { timeout = 1, ping = "" }) end)
      assert.has_error(function() connection.connect("127.0.0.1", 1, nil, { timeout = -1 }) end)
      assert.has_error(function() connection.connect("127.0.0.1", 1, nil, { timeout = 0 }) end)
      assert.has_error(function() connection.connect("127.0.0.1", 1, nil, { send_buffer_size = 0 }) end)
      assert.has_error(function() connection.connect("127.0.0.1", 70000, nil) end)
      assert.has_error(function() connection.connect(nil, 1, nil) end)
      assert.has_error(function() connection.connect("127.0.0.1", 1, nil, "opts") end)
      helper.assert_clean()
    end)
  end)

  describe("sets", function()
    it("make_data returning nil refuses the client; raising refuses it, logs, and leaves the set unharmed", function()
      helper.run(function()
        local logged = {}
        coronet.set_logger(function(msg) logged[#logged + 1] = msg end)
        local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
        local port = listening:getsockname().port
        local set = connection.empty_set()
        local verdicts = { "keep", "refuse", "raise", "keep" }
        local clients = {}
        for i = 1, 4 do clients[i] = helper.connect(port) end
        assert.is_true(connection.wait(connection.waiter_of_listening_socket(listening), { timeout = t(2) }))
        coronet.sleep(0.05)
        local n = 0
        local added = connection.accept_into_set(listening, function(address)
          n = n + 1
          assert.equal("127.0.0.1", address.ip)
          if verdicts[n] == "raise" then error("make_data exploded") end
          if verdicts[n] == "keep" then return n end
          return nil
        end, set)
        coronet.set_logger(nil)
        assert.equal(4, n)
        assert.equal(2, added)
        assert.equal(2, #set)
        local seen = {}
        connection.iter(set, function(conn) seen[#seen + 1] = conn:data() end)
        assert.same({ 1, 4 }, seen)
        assert.is_truthy(table.concat(logged, "\n"):find("make_data exploded", 1, true))
        for _, sock in ipairs(clients) do sock:close() end
        assert(helper.eventually(function()
          set:update()
          return #set == 0
        end))
        assert.equal(0, connection.accept_into_set(listening, function() return 1 end, set))
        listening:close()
        helper.failed_with("closed", connection.accept_into_set(listening, function() return 1 end, set))
      end)
    end)

    it("a coronet.tcp server's listening socket is refused with a clear error", function()
      helper.run(function()
        local server = helper.server(function() end)
        local ok, err = pcall(connection.accept_into_set, server, function() return 1 end, connection.empty_set())
        assert.is_false(ok)
        assert.is_truthy(tostring(err):find("accepts its clients itself", 1, true))
        assert.has_error(function() connection.accept_into_set({}, function() end, connection.empty_set()) end)
        assert.has_error(function() connection.waiter_of_listening_socket(server) end)
        server:close()
      end)
    end)

    it("accepted connections get the timeout and ping", function()
      helper.run(function()
        local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
        local set = connection.empty_set()
        local client = connection.connect("127.0.0.1", listening:getsockname().port, nil)
        assert.is_true(connection.wait(connection.waiter_of_listening_socket(listening), { timeout = t(2) }))
        assert.equal(1, connection.accept_into_set(listening, function() return true end, set,
          { timeout = t(0.3), ping = "?" }))
        assert(helper.eventually(function() return client:receive_poll(0, 1) == "?" end))
        assert(helper.eventually(function()
          set:update()
          return #set == 0
        end))
        client:close()
        listening:close()
      end)
    end)
  end)

  describe("inside a running loop", function()
    it("update only takes the snapshot, and wait yields", function()
      helper.run(function()
        local _, port = helper.server(helper.echo)
        local conn = connection.connect("127.0.0.1", port, nil)
        assert.is_true(connection.wait(connection.waiter(conn), { timeout = t(2) }))
        conn:update()
        assert.equal("connected", conn:state())
        conn:send("x\n")
        local other = coronet.spawn(function() return "ran meanwhile" end)
        assert.is_true(connection.wait(connection.waiter(conn), { timeout = t(2) }))
        assert.is_true(other:is_done())
        assert(helper.eventually(function() return conn:receive_line() == "x" end))
        conn:close()
      end)
    end)

    it("a waiter on a set and on a list of waiters; a custom waiter refuses coronet's own descriptors", function()
      helper.run(function()
        local _, port = helper.server(helper.echo)
        local set = connection.empty_set()
        local conn = connection.connect("127.0.0.1", port, nil)
        set:add(conn)
        assert.is_true(connection.wait(connection.waiter_of_set(set), { timeout = t(2) }))
        set:update()
        assert.equal(1, #set)
        local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
        assert.has_error(function() connection.waiter_custom({ read = { listening:fileno() } }) end)
        assert.has_error(function() connection.waiter_custom({ read = { -1 } }) end)
        assert.has_error(function() connection.waiter_of_list({ 1 }) end)
        assert.has_error(function() connection.wait({}) end)
        assert.has_error(function() connection.wait(connection.waiter(conn), { timeout = -1 }) end)
        conn:close()
        listening:close()
      end)
    end)

    it("make_address gives an address value with port 0, resolving names on the threadpool", function()
      helper.run(function()
        local v4 = connection.make_address("127.0.0.1")
        assert.equal("127.0.0.1", v4.ip)
        assert.equal(0, v4.port)
        assert.equal("::1", connection.make_address("::1").ip)
        local named = assert(connection.make_address("localhost"))
        assert.equal(0, named.port)
        helper.failed_with("EAI_NONAME", connection.make_address("no-such-host.invalid"))
        assert.has_error(function() connection.make_address(42) end)
      end)
    end)
  end)
end)
