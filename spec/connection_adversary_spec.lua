-- coronet.connection as the hardest outside tester would use it: bad input,
-- faults, interleavings (closes from every place a program can close),
-- stray resumes, garbage collection, a Lua state closed with everything in
-- flight, many connections, hostile peers against a polling server, and
-- real clients nobody here wrote (LuaSocket, nc, curl). Each case fails on
-- a defect; the cases that could crash run in a child lua5.4.
local coronet = require "coronet"
local core = require "coronet.core"
local connection = require "coronet.connection"
local news = require "coronet.connection.news"
local helper = require "spec.helper"

local t = helper.t
local settle, poll_until, polling_echo_server = helper.settle, helper.poll_until, helper.polling_echo_server

local function disconnected(conn) return conn:state() == "disconnected" end

-- How many `wait`s listen to news now (news.lua's listener table).
local function listener_count()
  local i = 1
  while true do
    local name, value = debug.getupvalue(news.listen, i)
    if not name then error("news.listen has no listener table") end
    if name == "listeners" then
      local n = 0
      for _ in pairs(value) do n = n + 1 end
      return n
    end
    i = i + 1
  end
end

-- A child lua5.4 running `source` (with the spec's paths); its output and exit status.
local function child(source, limit) return helper.child(source, { limit = limit }) end

-- Inside helper.run: a connection to a server that writes `data` and holds
-- the connection open until released; returns conn, release.
local function receiving(data, opts)
  local release = coronet.ivar()
  local _, port = helper.server(function(_, _, w)
    w:write(data)
    release.deferred:wait()
  end)
  local conn = connection.connect("127.0.0.1", port, nil, opts)
  assert(helper.eventually(function() return conn:receive_buffer_length() == #data end))
  return conn, function() if not release.filled then release:fill() end end
end

describe("coronet.connection against an adversary", function()
  describe("bad input", function()
    -- The same questions to a live receive buffer and to what is left after a disconnection.
    local function check_extremes(conn)
      local max = math.maxinteger
      assert.is_nil(conn:receive_poll(max, 1))
      assert.is_nil(conn:receive_poll(1, max))
      assert.is_nil(conn:receive_poll(max, max))
      assert.equal("", conn:receive_poll_part(max, 1))
      assert.equal("", conn:receive_poll_part(max, max))
      assert.equal("23456789", conn:receive_poll_part(2, max))
      assert.equal("9", conn:receive_poll_part(9, max))
      assert.equal("", conn:receive_poll_part(10, max))
      assert.is_nil(conn:receive(max))
      assert.equal("", conn:receive(0))
      assert.equal("", conn:receive_poll(0, 0))
      assert.equal("", conn:receive_poll(10, 0))
      assert.is_nil(conn:receive_poll(11, 0))
      assert.equal("", conn:receive_poll_part(0, 0))
      assert.equal("", conn:receive_part(0))
      assert.equal(0, conn:receive_forget(0))
      assert.has_error(function() conn:receive(math.mininteger) end)
      assert.has_error(function() conn:receive_poll(0, math.mininteger) end)
      assert.has_error(function() conn:receive_poll_part(math.mininteger, 0) end)
      assert.has_error(function() conn:receive_part(-1) end)
      assert.has_error(function() conn:receive(0 / 0) end)
      assert.has_error(function() conn:receive(math.huge) end)
      assert.equal(10, conn:receive_buffer_length())
      assert.equal("0123456789", conn:receive_part(max))
      assert.equal(0, conn:receive_forget(max))
    end

    it("huge, zero and past-the-end offsets and lengths, on a live buffer and after a disconnection", function()
      helper.run(function()
        local conn, release = receiving("0123456789")
        check_extremes(conn)
        conn:close()
        release()
        local _, port = helper.server(function(_, _, w) w:write("0123456789") end)
        local gone = connection.connect("127.0.0.1", port)
        assert(helper.eventually(function() gone:update() return disconnected(gone) end))
        check_extremes(gone)
      end)
    end)

    it("receive_poll past the end gives nil (not ''), receive_poll_part gives ''", function()
      helper.run(function()
        local conn, release = receiving("abc")
        assert.is_nil(conn:receive_poll(3, 1))
        assert.is_nil(conn:receive_poll(4, 0))
        assert.equal("", conn:receive_poll_part(4, 0))
        conn:close()
        release()
      end)
    end)

    it("descriptors that are not open, negative or absurd fail or raise, and nothing is left open", function()
      helper.run(function()
        local r = io.open("/dev/null")
        local fd = 1000
        helper.failed_with("EBADF", connection.custom({ input = fd }))
        helper.failed_with("EBADF", connection.custom({ output = fd }))
        helper.failed_with("EBADF", connection.custom({ input = 0 < 1 and 999, output = 998 }))
        for _, bad in ipairs { -1, math.maxinteger, math.mininteger, 1.5, 0 / 0, "0", true } do
          local ok, value, _, code = pcall(connection.custom, { input = bad })
          assert.is_true(not ok or (value == nil and code ~= nil), tostring(bad))
        end
        r:close()
        local closed = io.open("/dev/null")
        closed:close()
        assert.has_error(function() connection.custom({ input = closed }) end)
      end)
    end)

    it("make_data raising anything (nil, a table, an object whose __tostring raises) refuses the client, set unharmed", function()
      helper.run(function()
        local logged = {}
        coronet.set_logger(function(msg) logged[#logged + 1] = msg end)
        local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
        local port = listening:getsockname().port
        local set = connection.empty_set()
        local raises = {
          function() error(nil) end,
          function() error({}) end,
          function() error(setmetatable({}, { __tostring = function() error("tostring raised") end })) end,
          function() return nil end,
        }
        local clients = {}
        for i = 1, #raises do
          clients[i] = helper.connect(port)
          assert(helper.eventually(function()
            connection.wait(connection.waiter_of_listening_socket(listening), { timeout = 0.05 })
            local ok, added = pcall(connection.accept_into_set, listening, raises[i], set)
            assert(ok, added)
            return added == 0 and #listening.ready == 0
          end))
        end
        assert.equal(0, #set)
        clients[#clients + 1] = helper.connect(port)
        assert(helper.eventually(function()
          connection.accept_into_set(listening, function() return true end, set)
          return #set == 1
        end))
        coronet.set_logger(nil)
        assert.is_true(#logged >= 3)
        for conn in set:each() do conn:close() end
        for _, sock in ipairs(clients) do sock:close() end
        listening:close()
      end)
    end)

    it("a custom waiter on a descriptor that is not open raises a clear error (not true at once, for ever)", function()
      for _, fd in ipairs { 1000 } do
        local ok, err = pcall(connection.wait, connection.waiter_custom { read = { fd } }, { timeout = t(1) })
        assert.is_false(ok, "wait on descriptor " .. fd .. " returned " .. tostring(err))
        assert.matches("coronet.connection.wait: .*descriptor " .. fd, tostring(err))
        helper.run(function()
          ok, err = pcall(connection.wait, connection.waiter_custom { read = { fd } }, { timeout = t(1) })
          assert.is_false(ok)
          assert.matches("descriptor " .. fd, tostring(err))
          assert.equal(0, listener_count())
        end)
      end
      settle()
    end)

    it("update on a closed connection is a no-op; a waiter on a closed connection returns at once", function()
      local listening, _, tick = polling_echo_server()
      local conn = connection.connect("127.0.0.1", listening:getsockname().port)
      poll_until(conn, function(c) tick() return c:state() == "connected" end)
      conn:close()
      for _ = 1, 3 do
        conn:update()
        assert.same({ "disconnected" }, { conn:state() })
      end
      local started = coronet.now()
      assert.is_true(connection.wait(connection.waiter(conn), { timeout = 5 }))
      assert.is_true(connection.wait(connection.waiter(conn)))
      assert.is_true(coronet.now() - started < 1)
      assert.is_true(conn:send("ignored"))
      conn:close_nicely()
      conn:close()
      listening:close()
      settle()
    end)
  end)

  describe("closing from every place", function()
    it("close from another fiber while a wait() on it is pending: the wait returns true", function()
      helper.run(function()
        local hold = coronet.ivar()
        local _, port = helper.server(function() hold.deferred:wait() end)
        local conn = connection.connect("127.0.0.1", port)
        assert(helper.eventually(function() conn:update() return conn:state() == "connected" end))
        coronet.spawn(function() coronet.sleep(0.05) conn:close() end)
        assert.is_true(connection.wait(connection.waiter(conn), { timeout = t(2) }))
        assert.equal("disconnected", conn:state())
        assert.equal(0, listener_count())
        hold:fill()
      end)
    end)

    it("close from an upon callback and from inside make_data (its own listening socket, the set's members)", function()
      helper.run(function()
        local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
        local port = listening:getsockname().port
        local set = connection.empty_set()
        local clients = {}
        for i = 1, 3 do clients[i] = helper.connect(port) end
        assert(helper.eventually(function()
          connection.accept_into_set(listening, function() return true end, set)
          return #set == 3
        end))
        local fired = coronet.ivar()
        local first = set.members[1]
        fired.deferred:upon(function() first:close() end)
        fired:fill()
        assert(helper.eventually(function() set:update() return #set == 2 end))
        for i = 4, 6 do clients[i] = helper.connect(port) end
        coronet.sleep(0.05)
        local ok, added = pcall(connection.accept_into_set, listening, function()
          for conn in set:each() do conn:close() end
          listening:close()
          return true
        end, set)
        assert.is_true(ok, tostring(added))
        set:update()
        for conn in set:each() do conn:close() end
        set:update()
        assert.equal(0, #set)
        for _, sock in ipairs(clients) do sock:close() end
      end)
    end)

    it("close while connecting: DNS of localhost in flight, and a black-hole connect", function()
      helper.run(function()
        local _, port = helper.server(function() end)
        local conn = connection.connect("localhost", port)
        conn:close()
        assert.equal("disconnected", conn:state())
        local hole, release = helper.black_hole()
        local stuck = connection.connect("127.0.0.1", hole, nil, { timeout = t(5) })
        coronet.sleep(0.05)
        stuck:update()
        assert.equal("connecting", stuck:state())
        stuck:close()
        assert.same({ "disconnected" }, { stuck:state() })
        coronet.sleep(0.05)
        stuck:update()
        assert.same({ "disconnected" }, { stuck:state() })
        release()
      end)
    end)

    it("close_nicely then close; close_nicely while connecting then a refused connect", function()
      helper.run(function()
        local hold = coronet.ivar()
        local _, port = helper.server(function() hold.deferred:wait() end)
        local conn = connection.connect("127.0.0.1", port)
        assert(helper.eventually(function() conn:update() return conn:state() == "connected" end))
        conn:send("x")
        conn:close_nicely({ timeout = t(1) })
        assert.equal("disconnecting", conn:state())
        conn:close()
        assert.same({ "disconnected" }, { conn:state() })
        local refused, sock = helper.refused_port()
        local doomed = connection.connect("127.0.0.1", refused)
        doomed:send("never")
        doomed:close_nicely()
        assert.equal("disconnecting", doomed:state())
        assert(helper.eventually(function() doomed:update() return disconnected(doomed) end))
        sock:close()
        hold:fill()
      end)
    end)

    it("a set updated while iterating with each(), f closing members", function()
      local listening, set, tick = polling_echo_server()
      local port = listening:getsockname().port
      local clients = {}
      for i = 1, 10 do clients[i] = connection.connect("127.0.0.1", port) end
      local deadline = coronet.now() + t(3)
      while #set < 10 and coronet.now() < deadline do
        tick()
        coronet.step(0.01)
      end
      assert.equal(10, #set)
      local seen = 0
      for conn in set:each() do
        seen = seen + 1
        conn:close()
        set:update()
        set:iter(function(other) other:close() end)
      end
      assert.equal(10, seen)
      set:update()
      assert.equal(0, #set)
      for _, conn in ipairs(clients) do conn:close() end
      listening:close()
      settle()
    end)
  end)

  describe("fibers that misbehave", function()
    it("a stray coroutine.resume of a fiber blocked in connection.wait is refused; the real wake-up arrives", function()
      helper.run(function()
        local hold = coronet.ivar()
        local _, port = helper.server(function(_, _, w) hold.deferred:wait() w:write("x") end)
        local conn = connection.connect("127.0.0.1", port)
        assert(helper.eventually(function() conn:update() return conn:state() == "connected" end))
        conn:update()
        local result = coronet.ivar()
        local co
        coronet.spawn(function()
          co = coroutine.running()
          result:fill(connection.wait(connection.waiter(conn), { timeout = t(2) }))
        end)
        coronet.sleep(0.02)
        local resumed, value, err = coroutine.resume(co, "stray")
        assert.is_true(resumed)
        assert.is_nil(value)
        assert.matches("stray coroutine.resume", tostring(err), 1, true)
        coronet.sleep(0.02)
        assert.is_false(result.filled)
        hold:fill()
        assert.is_true(result.deferred:wait(t(2)))
        assert.equal(0, listener_count())
        conn:close()
      end)
    end)

    it("wait inside a table.sort comparator raises cleanly and leaves no listener behind", function()
      helper.run(function()
        local hold = coronet.ivar()
        local _, port = helper.server(function() hold.deferred:wait() end)
        local conn = connection.connect("127.0.0.1", port)
        assert(helper.eventually(function() conn:update() return conn:state() == "connected" end))
        conn:update()
        local waiter = connection.waiter(conn)
        local ok, err = pcall(table.sort, { 3, 1, 2 }, function(a, b)
          connection.wait(waiter, { timeout = 0.05 })
          return a < b
        end)
        assert.is_false(ok)
        assert.is_truthy(tostring(err):find("yield") or tostring(err):find("cannot"), tostring(err))
        assert.equal(0, listener_count())
        assert.is_false(connection.wait(waiter, { timeout = 0.05 })) -- still usable
        assert.equal(0, listener_count())
        conn:close()
        hold:fill()
      end)
    end)

    it("a sync call inside a coronet.run fiber raises a clear error; the blocking interface works after run returned", function()
      local port
      helper.run(function()
        local _, p = helper.server(helper.echo)
        port = p
        local ok, err = pcall(connection.sync.connect, "127.0.0.1", port)
        assert.is_false(ok)
        assert.is_truthy(tostring(err):find("running loop"), tostring(err))
        ok, err = pcall(connection.make_address, "localhost")
        assert.is_true(ok, tostring(err))
      end)
      local listening, _, tick = polling_echo_server()
      local ticker = coronet.spawn(function()
        repeat tick() until not coronet.sleep(0.005)
      end)
      local conn = assert(connection.sync.connect("127.0.0.1", listening:getsockname().port, { timeout = t(2) }))
      assert.is_true(conn:send("after run\n"))
      assert.equal("after run", conn:receive_line({ timeout = t(2) }))
      conn:close()
      ticker:cancel()
      listening:close()
      settle()
    end)
  end)

  describe("a game loop", function()
    -- A frame's work longer than the step's timeout left the loop's clock
    -- stale: step's bounding timer was already due, fired before the poll,
    -- and the poll then waited for I/O with no bound (a hang with a silent peer).
    it("coronet.step(timeout) returns in time after a frame's work longer than the timeout", function()
      local out, status = child([[
        local coronet = require "coronet"
        local connection = require "coronet.connection"
        local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
        local conn = connection.connect("127.0.0.1", listening:getsockname().port)
        for _ = 1, 5 do coronet.step(0.01) end
        local function busy(s) local c = os.clock() while os.clock() - c < s do end end
        for frame = 1, 5 do
          busy(0.03)
          coronet.step(0.01)
          conn:update()
        end
        print("frames done", conn:state())
        os.exit(0, true)
      ]], 10)
      assert.equal(0, status, out)
      assert.is_truthy(out:find("frames done\tconnected"), out)
    end)
  end)

  describe("garbage collection and the end of the Lua state", function()
    it("connections, sets, waiters and listening sockets dropped without close while the loop runs", function()
      helper.run(function()
        local _, port = helper.server(helper.echo)
        do
          local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
          local set = connection.empty_set()
          local lport = listening:getsockname().port
          local conns = {}
          for i = 1, 4 do conns[i] = connection.connect("127.0.0.1", i % 2 == 0 and port or lport, nil, { timeout = t(5) }) end
          coronet.sleep(0.02)
          connection.accept_into_set(listening, function() return true end, set)
          local waiters = { connection.waiter(conns[1]), connection.waiter_of_set(set),
                            connection.waiter_of_listening_socket(listening) }
          coronet.spawn(function() connection.wait(connection.waiter_of_list(waiters), { timeout = t(0.2) }) end)
          conns[1]:send("x\n")
          conns[3]:close_nicely()
        end
        for _ = 1, 5 do
          collectgarbage()
          coronet.sleep(0.01)
        end
      end)
    end)

    it("a connection dropped without close by a polling program is closed by the collector", function()
      local listening, set, tick = polling_echo_server()
      do
        local conn = connection.connect("127.0.0.1", listening:getsockname().port)
        poll_until(conn, function(c) tick() return c:state() == "connected" end)
      end
      local deadline = coronet.now() + t(3)
      while #set == 0 and coronet.now() < deadline do tick() coronet.step(0.01) end
      assert.equal(1, #set)
      deadline = coronet.now() + t(3)
      while #set > 0 and coronet.now() < deadline do
        collectgarbage()
        tick()
        coronet.step(0.01)
      end
      assert.equal(0, #set) -- the server saw the dropped client's EOF
      listening:close()
      settle()
    end)

    it("a Lua state closed with connections in every state, sync calls and waits in flight", function()
      local out, status = child([[
        local coronet = require "coronet"
        local connection = require "coronet.connection"
        local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
        local port = listening:getsockname().port
        local set = connection.empty_set()
        local conns = {
          connection.connect("127.0.0.1", port, nil, { timeout = 5, ping = "p" }),
          connection.connect("localhost", port),
          connection.connect("127.0.0.1", port),
          connection.connect("127.0.0.1", port),
        }
        conns[2]:send(string.rep("x", 100000))
        for _ = 1, 20 do coronet.step(0.01) connection.accept_into_set(listening, function() return 1 end, set) end
        conns[3]:send(string.rep("y", 900000))
        conns[3]:close_nicely()
        conns[4]:close()
        conns[5] = connection.connect("localhost", port)
        local sync = assert(connection.sync.connect("127.0.0.1", port))
        coronet.spawn(function() connection.wait(connection.waiter_of_set(set)) end)
        coronet.spawn(function() coronet.sleep(0.05) print("closing") io.stdout:flush() os.exit(0, true) end)
        sync:receive_line({ timeout = 5 }) -- in flight when the state closes
        print("not reached")
      ]], 20)
      assert.is_truthy(out:find("closing"), out)
      assert.is_falsy(out:find("not reached"), out)
      assert.equal(0, status, out)
    end)

    it("a Lua state closed from inside connection.wait and from a make_data", function()
      local out, status = child([[
        local coronet = require "coronet"
        local connection = require "coronet.connection"
        local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
        local port = listening:getsockname().port
        local set = connection.empty_set()
        local a = connection.connect("127.0.0.1", port)
        connection.wait(connection.waiter_of_listening_socket(listening), { timeout = 2 })
        print("closing")
        io.stdout:flush()
        connection.accept_into_set(listening, function() os.exit(0, true) end, set)
        print("not reached")
      ]], 20)
      assert.is_truthy(out:find("closing"), out)
      assert.equal(0, status, out)
    end)
  end)

  describe("faults from the peer", function()
    -- Inside helper.run: a connection with megabytes queued to a server that
    -- reads a little then resets (SO_LINGER 0) through `reset(sock)`.
    local function reset_mid_send(reset)
      local peer = coronet.ivar()
      local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
      local port = listening:getsockname().port
      coronet.spawn(function()
        local sock = assert(coronet.net.accept(listening))
        sock:reader():really_read(1000)
        reset(sock)
        listening:close()
        peer:fill()
      end)
      local conn = connection.connect("127.0.0.1", port, nil, { send_buffer_size = 16 * 1024 * 1024 })
      local chunk = string.rep("z", 1024 * 1024)
      for _ = 1, 8 do assert(conn:send(chunk)) end
      helper.await(peer.deferred)
      assert(helper.eventually(function()
        conn:update()
        if conn:state() ~= "disconnected" then conn:send(chunk) end
        return disconnected(conn)
      end, 5))
      local _, err, code = conn:state()
      assert.is_truthy(code, "a reset is an error, not a local close")
      assert.is_truthy(err.op == "read" or err.op == "write", tostring(err.op))
      assert.is_truthy(code == "ECONNRESET" or code == "EPIPE" or code == "closed", code)
      assert.is_true(conn:send("after"))
      conn:receive_all()
    end

    it("a coronet peer that aborts (SO_LINGER 0) while the client has megabytes queued", function()
      helper.run(function() reset_mid_send(function(sock) sock:abort() end) end)
    end)

    it("a LuaSocket peer that resets with linger 0 while the client has megabytes queued", function()
      local socket = require "socket"
      local server = assert(socket.bind("127.0.0.1", 0))
      local _, port = server:getsockname()
      server:settimeout(0)
      local conn = connection.connect("127.0.0.1", tonumber(port), nil, { send_buffer_size = 16 * 1024 * 1024 })
      local chunk = string.rep("z", 1024 * 1024)
      for _ = 1, 8 do assert(conn:send(chunk)) end
      local client
      local deadline = coronet.now() + t(3)
      while not client and coronet.now() < deadline do
        conn:update()
        client = server:accept()
        coronet.step(0.01)
      end
      assert(client, "no client accepted")
      client:settimeout(1)
      assert(client:receive(1000))
      assert(client:setoption("linger", { on = true, timeout = 0 }))
      client:close()
      server:close()
      poll_until(conn, function(c)
        if not disconnected(c) then c:send(chunk) end
        return disconnected(c)
      end, 5)
      local _, err, code = conn:state()
      assert.is_truthy(code)
      assert.is_truthy(err.op == "read" or err.op == "write", tostring(err.op))
      settle()
    end)
  end)

  describe("many connections and hostile peers against a polling server", function()
    it("500 clients through one set with a polling server loop, all exchanging lines; nothing left open", function()
      local before = helper.open_fds()
      local listening, set, tick = polling_echo_server({ timeout = t(20) })
      local port = listening:getsockname().port
      local clients = connection.empty_set()
      local n = helper.gc_stress and 40 or 500
      for i = 1, n do
        local conn = connection.connect("127.0.0.1", port, i)
        conn:send(("hello %d\n"):format(i))
        clients:add(conn)
      end
      local answered = 0
      local waiter = connection.waiter_of_list { connection.waiter_of_set(clients), connection.waiter_of_set(set),
                                                 connection.waiter_of_listening_socket(listening) }
      local deadline = coronet.now() + t(20)
      while answered < n and coronet.now() < deadline do
        tick()
        clients:update()
        for conn in clients:each() do
          local line = conn:receive_line()
          if line then
            assert.equal(("hello %d"):format(conn:data()), line)
            answered = answered + 1
            conn:close()
          end
        end
        connection.wait(waiter, { timeout = 0.05 })
      end
      assert.equal(n, answered)
      clients:update()
      assert.equal(0, #clients)
      deadline = coronet.now() + t(5)
      while #set > 0 and coronet.now() < deadline do tick() coronet.step(0.01) end
      assert.equal(0, #set)
      listening:close()
      settle()
      assert.equal(before, helper.open_fds())
    end)

    -- Inside helper.run: a polling server with these options and a tick; its set.
    local function polling_server(opts)
      local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
      local set = connection.empty_set()
      local function tick() connection.accept_into_set(listening, function() return true end, set, opts) set:update() end
      return listening, set, tick
    end

    it("a 10 MiB line gives line_too_long, the buffer never past receive_buffer_size", function()
      helper.run(function()
        local cap = 64 * 1024
        local listening, set, tick = polling_server({ receive_buffer_size = cap })
        local sock, _, w = helper.connect(listening:getsockname().port)
        local writer = coronet.spawn(function() w:write(string.rep("a", 10 * 1024 * 1024)) end)
        local verdict
        assert(helper.eventually(function()
          tick()
          for conn in set:each() do
            assert.is_true(conn:receive_buffer_length() <= cap)
            local line, err, code = conn:receive_line()
            assert.is_nil(line)
            if code then verdict = code assert.is_truthy(err) end
          end
          return verdict ~= nil
        end, 5))
        assert.equal("line_too_long", verdict)
        writer:cancel()
        sock:abort()
        for conn in set:each() do conn:close() end
        listening:close()
      end)
    end)

    it("a flood the program never consumes: receive_buffer_length never above the option, no idle disconnect", function()
      helper.run(function()
        local cap = 32 * 1024
        local listening, set, tick = polling_server({ receive_buffer_size = cap, timeout = t(0.3) })
        local sock, _, w = helper.connect(listening:getsockname().port)
        local flooding = coronet.spawn(function()
          while true do
            if not w:write(string.rep("f", 64 * 1024)) then return end
          end
        end)
        local started = coronet.now()
        while coronet.now() - started < t(0.8) do
          tick()
          for conn in set:each() do assert.is_true(conn:receive_buffer_length() <= cap) end
          coronet.sleep(0.01)
        end
        assert.equal(1, #set)
        for conn in set:each() do
          assert.equal("connected", conn:state())
          assert.equal(cap, conn:receive_buffer_length())
          conn:close()
        end
        flooding:cancel()
        sock:abort()
        listening:close()
      end)
    end)

    it("slowloris: one byte every 50 ms never makes a line, and other clients are served meanwhile", function()
      helper.run(function()
        local listening, set, tick = polling_echo_server({ timeout = t(2) })
        local port = listening:getsockname().port
        local slow, _, sw = helper.connect(port)
        local dripping = coronet.spawn(function()
          while true do sw:write("s") coronet.sleep(0.05) end
        end)
        local serving = coronet.spawn(function() repeat tick() until not coronet.sleep(0.005) end)
        for i = 1, 5 do
          local _, r, w = helper.connect(port)
          w:write("fast " .. i .. "\n")
          assert.equal("fast " .. i, r:read_line(t(2)))
        end
        dripping:cancel()
        serving:cancel()
        slow:close()
        for conn in set:each() do conn:close() end
        listening:close()
      end)
    end)

    it("a peer that never reads: send returns busy, pending never past send_buffer_size", function()
      helper.run(function()
        local cap = 256 * 1024
        local listening, set, tick = polling_server({ send_buffer_size = cap })
        local sock = helper.connect(listening:getsockname().port)
        assert(helper.eventually(function() tick() return #set == 1 end))
        local conn = set.members[1]
        local chunk = string.rep("b", 16 * 1024)
        local busy
        for _ = 1, 2000 do
          local ok, err, code = conn:send(chunk)
          if not ok then
            busy = code
            assert.is_truthy(err)
            break
          end
          assert.is_true(conn.output:pending() <= cap)
          coronet.sleep(0)
        end
        assert.equal("busy", busy)
        assert.is_true(conn.output:pending() <= cap)
        conn:close()
        sock:abort()
        listening:close()
      end)
    end)

    it("accepted connections keep the wall-clock claims: no ping before 0.45 x timeout, no disconnect before 0.9 x", function()
      helper.run(function()
        local timeout = t(0.4)
        local listening, set, tick = polling_server({ timeout = timeout, ping = "PING\n" })
        local started = coronet.now()
        local sock, r = helper.connect(listening:getsockname().port)
        local pinged_at
        coronet.spawn(function()
          if r:read_line(t(5)) == "PING" then pinged_at = coronet.now() end
        end)
        local gone_at
        assert(helper.eventually(function()
          tick()
          if #set == 0 and pinged_at then gone_at = coronet.now() end
          return gone_at ~= nil
        end, 5))
        assert.is_true(pinged_at - started >= 0.45 * timeout, ("ping after %.3f s"):format(pinged_at - started))
        assert.is_true(gone_at - started >= 0.9 * timeout, ("disconnect after %.3f s"):format(gone_at - started))
        sock:close()
        listening:close()
      end)
    end)
  end)

  describe("extreme numbers and names", function()
    it("huge timeouts (1e300, math.huge) for connections, waits, close_nicely and sync calls work as 'never'", function()
      helper.run(function()
        local _, port = helper.server(helper.echo)
        local conn = connection.connect("127.0.0.1", port, nil, { timeout = 1e300, ping = "p\n" })
        conn:send("one\n")
        assert(helper.eventually(function()
          connection.wait(connection.waiter(conn), { timeout = 1e300 })
          conn:update()
          return conn:receive_line() == "one"
        end))
        assert.equal("connected", conn:state())
        conn:send("two\n")
        assert.is_true(connection.wait(connection.waiter(conn), { timeout = math.huge }))
        conn:close_nicely({ timeout = math.huge })
        assert(helper.eventually(function() conn:update() return disconnected(conn) end))
        assert.same({ "disconnected" }, { conn:state() })
      end)
      local listening, _, tick = polling_echo_server()
      local ticker = coronet.spawn(function() repeat tick() until not coronet.sleep(0.005) end)
      local sync = assert(connection.sync.connect("127.0.0.1", listening:getsockname().port, { timeout = 1e300 }))
      assert.is_true(sync:send("three\n", { timeout = math.huge }))
      assert.equal("three", sync:receive_line({ timeout = 1e300 }))
      sync:close()
      ticker:cancel()
      listening:close()
      settle()
    end)

    it("host names the resolver cannot take end in a clean connect error (op connect)", function()
      helper.run(function()
        for _, host in ipairs { "", "a\0b", string.rep("x", 300), "no-such-host.invalid" } do
          local conn = connection.connect(host, 80)
          assert(helper.eventually(function() conn:update() return disconnected(conn) end, 5), host)
          local _, err, code = conn:state()
          assert.is_truthy(code, host)
          assert.equal("connect", err.op)
          local address, aerr, acode = connection.make_address(host)
          assert.is_nil(address)
          assert.is_truthy(aerr and acode, host)
        end
      end)
    end)

    it("a sync connection after close: send and receive fail with closed, close again is a no-op", function()
      local listening, _, tick = polling_echo_server()
      local ticker = coronet.spawn(function() repeat tick() until not coronet.sleep(0.005) end)
      local sync = assert(connection.sync.connect("127.0.0.1", listening:getsockname().port))
      sync:close()
      sync:close()
      local ok, _, code = sync:send("x")
      assert.is_nil(ok)
      assert.equal("closed", code)
      ok, _, code = sync:receive_line({ timeout = 0.1 })
      assert.is_nil(ok)
      assert.equal("closed", code)
      ticker:cancel()
      listening:close()
      settle()
    end)

    it("a fiber that closes the connection as soon as its wait returns", function()
      helper.run(function()
        local _, port = helper.server(helper.echo)
        for _ = 1, 20 do
          local conn = connection.connect("127.0.0.1", port)
          conn:send("x\n")
          local done = coronet.ivar()
          coronet.spawn(function()
            while conn:alive() do
              connection.wait(connection.waiter(conn), { timeout = t(1) })
              conn:update()
              conn:close()
            end
            done:fill()
          end)
          helper.await(done.deferred)
        end
      end)
    end)
  end)

  describe("clients nobody here wrote, against a polling server", function()
    -- Runs the polling server's tick in a fiber of its own until stopped.
    local function ticking(tick)
      return coronet.spawn(function() repeat tick() until not coronet.sleep(0.005) end)
    end

    -- Runs a shell command to its end while the loop keeps running; its output.
    local function shell(cmd)
      local out_file = os.tmpname()
      local done_file = out_file .. ".done"
      -- Without the sanitizer's preload: curl hangs with libasan preloaded.
      os.execute(("((unset LD_PRELOAD; %s) > %s 2>&1; touch %s) &"):format(cmd, out_file, done_file))
      local deadline = coronet.now() + t(10)
      while coronet.now() < deadline do
        local f = io.open(done_file)
        if f then f:close() break end
        coronet.step(0.01)
      end
      local f = assert(io.open(out_file))
      local out = f:read("a")
      f:close()
      os.remove(out_file)
      os.remove(done_file)
      return out
    end

    it("the README's same client three ways runs against an echo server", function()
      local readme = assert(io.open("README.md")):read("a")
      local snippet = readme:match("The same client %(send a line, print the answer%) three ways:%s*```lua\n(.-)```")
      assert.is_truthy(snippet, "the snippet is not in README.md any more")
      local _, port = helper.server(helper.echo)
      local printed = {}
      local env = setmetatable({ print = function(...) printed[#printed + 1] = table.concat({ tostring(...) }, "\t") end },
                               { __index = _G })
      local chunk = assert(load(snippet:gsub("7000", tostring(port)), "=README", "t", env))
      chunk()
      assert.same({ "hello", "hello", "disconnected", "hello" }, printed)
      settle()
    end)

    it("LuaSocket clients (blocking, as a LuaSocket user writes them) against accept_into_set", function()
      local socket = require "socket"
      local listening, _, tick = polling_echo_server()
      local port = listening:getsockname().port
      local clients = {}
      for i = 1, 5 do
        local c = socket.tcp()
        c:settimeout(0)
        c:connect("127.0.0.1", port)
        clients[i] = c
      end
      local deadline = coronet.now() + t(5)
      local answers = {}
      while #answers < 5 and coronet.now() < deadline do
        tick()
        coronet.step(0.005)
        for i, c in ipairs(clients) do
          if not answers[i] then
            c:send("luasocket " .. i .. "\n")
            local line = c:receive("*l")
            if line then answers[i] = line end
          end
        end
        local n = 0
        for _ in pairs(answers) do n = n + 1 end
        if n == 5 then break end
      end
      for i = 1, 5 do assert.equal("luasocket " .. i, answers[i]) end
      for _, c in ipairs(clients) do c:close() end
      listening:close()
      settle()
    end)

    -- nc's stdin stays open until the answers are back: a peer's EOF is a
    -- disconnection (the seed's rule), and answers after it are dropped.
    it("nc talks to accept_into_set, and its EOF is seen (closed, op read)", function()
      local listening, set, tick = polling_echo_server()
      local port = listening:getsockname().port
      local last
      local ticker = coronet.spawn(function()
        while true do
          tick()
          for conn in set:each() do last = conn end
          if not coronet.sleep(0.005) then return end
        end
      end)
      finally(function() ticker:cancel() listening:close() settle() end)
      local out = shell(("(printf 'one\\ntwo\\n'; sleep %d) | nc -q 0 -w 5 127.0.0.1 %d"):format(math.ceil(t(2)), port))
      assert.equal("one\ntwo\n", out)
      assert.is_truthy(last)
      assert.equal("disconnected", last:state())
      local _, err, code = last:state()
      assert.equal("closed", code)
      assert.equal("read", err.op)
      ticker:cancel()
      listening:close()
      settle()
    end)

    it("curl gets an answer from a tiny Procord HTTP responder", function()
      local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
      local set = connection.empty_set()
      local ticker = coronet.spawn(function()
        while true do
          connection.accept_into_set(listening, function() return { lines = 0 } end, set, { timeout = t(5) })
          set:update()
          for conn in set:each() do
            while true do
              local line = conn:receive_line()
              if not line then break end
              if line == "" then
                local body = "hello from procord\n"
                conn:send(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"):format(#body, body))
                conn:close_nicely({ timeout = t(2) })
                break
              end
            end
          end
          if not coronet.sleep(0.005) then return end
        end
      end)
      finally(function() ticker:cancel() listening:close() settle() end)
      local out = shell(("curl -sS -m 5 http://127.0.0.1:%d/"):format(listening:getsockname().port))
      assert.equal("hello from procord\n", out)
      ticker:cancel()
      for conn in set:each() do conn:close() end
      listening:close()
      settle()
    end)
  end)
end)
