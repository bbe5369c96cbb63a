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

-- Outside coronet.run: runs the loop until every fiber and core object is
-- gone (closes finish in the loop), then asserts it.
local function settle()
  local deadline = coronet.now() + t(5)
  while (core.fiber_count() > 0 or core.live() > 0) and coronet.now() < deadline do
    coronet.step(0.01)
  end
  helper.assert_clean()
end

-- Polls `conn` (update + wait) until pred(conn) holds; fails after `limit` seconds.
local function poll_until(conn, pred, limit)
  local deadline = coronet.now() + t(limit or 2)
  local waiter = connection.waiter(conn)
  while true do
    conn:update()
    if pred(conn) then return true end
    local left = deadline - coronet.now()
    if left <= 0 then error("condition not reached; state: " .. tostring(conn:state()), 2) end
    connection.wait(waiter, { timeout = math.min(left, 0.05) })
  end
end

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

-- A Procord echo server (listen + accept_into_set + update_set), polled by
-- `tick()`: every complete line is sent back with "\n".
local function polling_echo_server(opts)
  local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
  local set = connection.empty_set()
  local function tick()
    connection.accept_into_set(listening, function(address) return { from = address } end, set, opts)
    set:update()
    for conn in set:each() do
      while true do
        local line = conn:receive_line()
        if not line then break end
        conn:send(line .. "\n")
      end
    end
  end
  return listening, set, tick
end

-- A child lua5.4 running `source` (with the spec's paths); its output and exit status.
local function child(source, limit)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write('package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path\n', source)
  f:close()
  local cmd = ("LUA_CPATH='%s' timeout -k 2 %d lua5.4 %s 2>&1; echo \"EXIT=$?\""):format(
    package.cpath, math.ceil(t(limit or 20)), file)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  os.remove(file)
  return out, tonumber(out:match("EXIT=(%d+)%s*$"))
end

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

    it("a peer that never answers: the idle timeout fires, state says why (timeout, op idle)", function()
      helper.run(function()
        local hold = coronet.ivar()
        local _, port = helper.server(function() hold.deferred:wait() end)
        local timeout = t(0.3)
        local conn = connection.connect("127.0.0.1", port, nil, { timeout = timeout })
        local started = coronet.now()
        assert(helper.eventually(function() conn:update() return disconnected(conn) end, 3))
        assert.is_true(coronet.now() - started >= 0.9 * timeout)
        local state, err, code = conn:state()
        assert.equal("disconnected", state)
        assert.equal("timeout", code)
        assert.equal("idle", err.op)
        assert.equal("127.0.0.1", err.arg)
        hold:fill()
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
        local fiber = coronet.spawn(function()
          result:fill(connection.wait(connection.waiter(conn), { timeout = t(2) }))
        end)
        coronet.sleep(0.02)
        local co = fiber.co or fiber.coroutine or fiber.thread
        if co then pcall(coroutine.resume, co, "stray") end
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
        while true do tick() coronet.sleep(0.005) end
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
end)
