-- coronet.connection tried from outside: what a programmer who read only
-- issue 9, the Procord reference and the README would write, and attack.
-- Each case failed before its fix unless its comment says otherwise.
local coronet = require "coronet"
local connection = require "coronet.connection"
local helper = require "helper"

local t = helper.t
local settle, poll_until = helper.settle, helper.poll_until
local sync = connection.sync

local function disconnected(conn) return conn:state() == "disconnected" end

-- A polling listener on 127.0.0.1: listening socket, its port.
local function listener()
  local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
  return listening, listening:getsockname().port
end

-- Accepts into `set` with `make_data` until `n` connections are in it (outside any fiber).
local function accept_until(listening, set, n, make_data)
  local waiter = connection.waiter_of_listening_socket(listening)
  local deadline = coronet.now() + t(3)
  while #set < n do
    assert(coronet.now() < deadline, "no client accepted")
    connection.wait(waiter, { timeout = 0.05 })
    connection.accept_into_set(listening, make_data or function(address) return address end, set)
  end
end

-- A connected pair made by polling: the client connection and the accepted one.
local function polled_pair(client_opts)
  local listening, port = listener()
  local set = connection.empty_set()
  local client = connection.connect("127.0.0.1", port, nil, client_opts)
  accept_until(listening, set, 1)
  poll_until(client, function(c) return c:state() == "connected" end)
  listening:close()
  return client, set.members[1]
end

-- Collects what coronet logs while `body` runs.
local function logged_during(body)
  local lines = {}
  coronet.set_logger(function(msg) lines[#lines + 1] = msg end)
  local ok, err = pcall(body, lines)
  coronet.set_logger(nil)
  assert(ok, err)
  return lines
end

describe("coronet.connection tried from outside", function()
  describe("accept_into_set never yields", function()
    -- Each make_data below waits or yields; called in a fiber, each used to
    -- make accept_into_set yield (the first two accepted the client later).
    local yielding = {
      { "sleep", function() coronet.sleep(0.01) return true end },
      { "coroutine.yield", function() coroutine.yield() return true end },
      { "a deferred's wait", function() coronet.ivar().deferred:wait(0.01) return true end },
      { "make_address of a name", function() return connection.make_address("localhost") end },
    }
    for _, case in ipairs(yielding) do
      local name, make_data = case[1], case[2]
      it("inside a fiber, a make_data that waits (" .. name .. ") refuses the client, is logged, set unharmed", function()
        helper.run(function()
          local listening, port = listener()
          local set = connection.empty_set()
          local client = helper.connect(port)
          local turns = 0
          local ticker = coronet.spawn(function()
            while true do turns = turns + 1 coronet.sleep(0) end
          end)
          local lines = logged_during(function(lines)
            assert(helper.eventually(function()
              local before = turns
              assert.equal(0, connection.accept_into_set(listening, make_data, set))
              assert.equal(before, turns) -- no other fiber ran: the call did not yield
              return #lines > 0
            end))
          end)
          ticker:cancel()
          assert.equal(0, #set)
          assert.is_truthy(lines[1] and lines[1]:find("make_data", 1, true), tostring(lines[1]))
          assert.is_truthy(lines[1]:find("yield", 1, true) or lines[1]:find("fiber", 1, true), lines[1])
          -- the refused client was closed, and the listening socket still serves
          assert.is_nil(client:reader():read(1))
          client:close()
          local next_client = helper.connect(port)
          assert(helper.eventually(function()
            connection.accept_into_set(listening, function() return true end, set)
            return #set == 1
          end))
          for conn in set:each() do conn:close() end
          next_client:close()
          listening:close()
        end)
      end)
    end

    it("outside any fiber, a make_data calling coroutine.yield refuses the client and is logged (passed before)", function()
      local listening, port = listener()
      local set = connection.empty_set()
      local client = connection.connect("127.0.0.1", port)
      local lines = logged_during(function(lines)
        local deadline = coronet.now() + t(3)
        while #lines == 0 do
          assert(coronet.now() < deadline, "make_data never called")
          connection.wait(connection.waiter_of_listening_socket(listening), { timeout = 0.05 })
          assert.equal(0, connection.accept_into_set(listening, function() coroutine.yield() return true end, set))
        end
      end)
      assert.equal(0, #set)
      assert.is_truthy(lines[1] and lines[1]:find("make_data", 1, true))
      poll_until(client, disconnected)
      listening:close()
      settle()
    end)
  end)

  describe("sets", function()
    after_each(settle)

    it("adding a connection already in the set is a no-op: it is listed, iterated and counted once", function()
      local client, server_side = polled_pair()
      local set = connection.empty_set()
      set:add(client)
      set:add(client)
      connection.add(set, client)
      set:add(server_side)
      assert.equal(2, #set)
      local seen = 0
      set:iter(function() seen = seen + 1 end)
      assert.equal(2, seen)
      set:update()
      assert.equal(2, #set)
      set:add(server_side) -- still known after an update
      assert.equal(2, #set)
      client:close()
      set:update()
      set:add(client) -- a closed connection goes at the next update, as a member closed later does
      set:update()
      for conn in set:each() do assert.are_not.equal(client, conn) end
      server_side:close()
    end)

    it("every method of a set is also a module function taking the set first (add, each)", function()
      local client = polled_pair()
      local set = connection.empty_set()
      connection.add(set, client)
      local members = {}
      for conn in connection.each(set) do members[#members + 1] = conn end
      assert.same({ client }, members)
      client:close()
      connection.update_set(set)
      assert.equal(0, #set)
    end)
  end)

  describe("the state after each way of ending", function()
    after_each(settle)

    it("the idle timeout is code timeout, kind timeout, op idle, the host as arg", function()
      local client, server_side = polled_pair({ timeout = t(0.5) })
      poll_until(client, disconnected)
      local state, err, code = client:state()
      assert.equal("disconnected", state)
      assert.equal("timeout", code)
      assert.equal("timeout", err.code)
      assert.equal("timeout", err.kind)
      assert.equal("idle", err.op)
      assert.equal("127.0.0.1", err.arg)
      server_side:close()
    end)

    it("close_nicely timed out, completed, and close: a local close, no error (passed before)", function()
      local client, server_side = polled_pair({ send_buffer_size = 8 * 1024 * 1024 })
      local chunk = ("x"):rep(1024 * 1024)
      for _ = 1, 8 do assert.is_true(client:send(chunk)) end -- the server never reads
      client:close_nicely({ timeout = 0.05 })
      assert.equal("disconnecting", (client:state()))
      poll_until(client, disconnected)
      assert.is_nil(select(2, client:state()))
      assert.is_nil(select(3, client:state()))
      server_side:close()
    end)
  end)

  describe("timeouts given as false mean none, as everywhere in coronet", function()
    after_each(settle)

    it("wait, close_nicely, connect and the blocking calls take timeout = false; true raises naming the option", function()
      local client, server_side = polled_pair({ timeout = false })
      assert.is_nil(client:timeout())
      server_side:send("a")
      assert.is_true(connection.wait(connection.waiter(client), { timeout = false }))
      assert.is_true(connection.wait(connection.waiter(client), { timeout = false }))
      connection.wait_(connection.waiter(client), { timeout = false })
      client:update()
      assert.equal("a", client:receive_all())
      for _, call in ipairs {
        function() connection.wait(connection.waiter(client), { timeout = true }) end,
        function() connection.connect("127.0.0.1", 1, nil, { timeout = true }) end,
        function() client:close_nicely({ timeout = true }) end,
      } do
        local ok, err = pcall(call)
        assert.is_false(ok)
        assert.matches("'timeout'", err)
      end
      client:close_nicely({ timeout = false })
      poll_until(client, disconnected)
      server_side:close()
      local listening, port = listener()
      local set = connection.empty_set()
      local conn = assert(sync.connect("127.0.0.1", port, { timeout = false }))
      accept_until(listening, set, 1)
      set.members[1]:send("line\n")
      assert.equal("line", conn:receive_line({ timeout = false }))
      assert.is_true(conn:send("x", { timeout = false }))
      set.members[1]:send("yz")
      assert.equal("yz", conn:receive(2, { timeout = false }))
      assert.has_error(function() conn:receive(1, { timeout = true }) end)
      conn:close()
      set.members[1]:close()
      listening:close()
    end)
  end)

  describe("a timeout of math.huge means never, as for wait and close_nicely", function()
    after_each(settle)

    it("connect and custom take it; the connection lives and receives", function()
      local client, server_side = polled_pair({ timeout = math.huge, ping = "p" })
      assert.equal(math.huge, client:timeout())
      connection.custom({ timeout = math.huge }):close()
      server_side:send("x")
      poll_until(client, function(c) return c:receive_buffer_length() == 1 end)
      assert.equal("connected", (client:state()))
      assert.equal("", server_side:receive_all()) -- no ping: the silence never reaches half of forever
      client:close()
      server_side:close()
    end)
  end)

  describe("clocks and buffers, polled (passed before: kept as a guard)", function()
    after_each(settle)

    it("a byte received restarts both clocks: the next ping and the idle timeout count from it", function()
      local timeout = t(0.4)
      local client, server_side = polled_pair({ timeout = timeout, ping = "P" })
      local start, byte_at, pings = coronet.now(), nil, {}
      while client:alive() and coronet.now() - start < 4 * timeout do
        coronet.step(0.005)
        client:update()
        for _ in server_side:receive_all():gmatch("P") do pings[#pings + 1] = coronet.now() end
        if not byte_at and #pings == 1 then
          byte_at = coronet.now()
          server_side:send("x")
        end
      end
      local gone_at = coronet.now()
      assert.equal(2, #pings) -- one per silent period
      assert.is_true(pings[1] - start >= 0.45 * timeout)
      assert.is_true(pings[2] - byte_at >= 0.45 * timeout, "the ping clock did not restart")
      assert.is_true(gone_at - byte_at >= 0.9 * timeout, "the idle clock did not restart")
      local _, err = client:state()
      assert.equal("idle", err.op)
      server_side:close()
    end)

    it("a full receive buffer pauses reading; consuming resumes it, and every byte arrives in order", function()
      local client, server_side = polled_pair({ receive_buffer_size = 1024 })
      local sent = {}
      for i = 1, 2000 do sent[i] = ("%09d\n"):format(i) end
      sent = table.concat(sent)
      assert.is_true(server_side:send(sent))
      local got, most = {}, 0
      local deadline = coronet.now() + t(5)
      while #table.concat(got) < #sent and coronet.now() < deadline do
        if client:receive_buffer_empty() then connection.wait(connection.waiter(client), { timeout = 0.05 }) end
        client:update()
        most = math.max(most, client:receive_buffer_length())
        got[#got + 1] = client:receive_part(300)
      end
      assert.equal(sent, table.concat(got))
      assert.is_true(most <= 1024, "receive buffer reached " .. most)
      client:close()
      server_side:close()
    end)
  end)

  describe("to-be-closed", function()
    after_each(settle)

    it("a connection in a <close> variable is closed when its scope ends, as a socket is", function()
      local listening, port = listener()
      local kept
      do
        local conn <close> = connection.connect("127.0.0.1", port)
        kept = conn
      end
      assert.equal("disconnected", (kept:state()))
      listening:close()
    end)
  end)

  describe("counts", function()
    after_each(settle)

    it("a float with an integer value counts as that integer (as lauxlib's luaL_checkinteger); others raise", function()
      local client, server_side = polled_pair()
      server_side:send("0123456789")
      poll_until(client, function(c) return c:receive_buffer_length() == 10 end)
      assert.equal("01", client:receive_poll(0.0, 2.0))
      assert.equal("23", client:receive_poll_part(2.0, 2.0))
      assert.equal("0", client:receive(1.0))
      assert.equal("1", client:receive_part(1.0))
      assert.equal(1, client:receive_forget(1.0))
      assert.equal(7, client:receive_buffer_length())
      for _, bad in ipairs { 1.5, "1", 2 ^ 63, -1.0, 0 / 0, math.huge, true } do
        assert.has_error(function() client:receive(bad) end, nil, tostring(bad))
      end
      assert.equal(7, client:receive_buffer_length())
      client:close()
      server_side:close()
    end)
  end)

  describe("misuse raises naming the function and the argument, as lauxlib does", function()
    after_each(settle)

    -- { call, the function's public name, the argument's number as called, a word of the message }
    local function cases(conn, set, listening, sync_conn)
      local waiter = connection.waiter(conn)
      return {
        { function() conn:receive(-1) end, "receive", 1, "integer" },
        { function() connection.receive(conn, -1) end, "receive", 2, "integer" },
        { function() conn:receive_poll(0, -1) end, "receive_poll", 2, "integer" },
        { function() connection.receive_poll(conn, -1, 0) end, "receive_poll", 2, "integer" },
        { function() conn:receive_poll_part(1.5, 0) end, "receive_poll_part", 1, "integer" },
        { function() conn:receive_part("1") end, "receive_part", 1, "integer" },
        { function() conn:receive_forget(nil) end, "receive_forget", 1, "integer" },
        { function() conn:send(42) end, "send", 1, "string" },
        { function() connection.send(conn, {}) end, "send", 2, "string" },
        { function() connection.state({}) end, "state", 1, "connection" },
        { function() connection.update(set) end, "update", 1, "got coronet.connection.set" },
        { function() set:add(waiter) end, "add", 1, "got coronet.connection.waiter" },
        { function() connection.waiter_of_set(sync_conn) end, "waiter_of_set", 1, "got coronet.connection.sync" },
        { function() connection.of_socket(1) end, "of_socket", 1, "socket" },
        { function() connection.of_socket(conn) end, "of_socket", 1, "got coronet.connection" },
        { function() connection.receive_line("x") end, "receive_line", 1, "connection" },
        { function() conn:close_nicely("x") end, "close_nicely", 1, "table" },
        { function() conn:close_nicely({ timeout = -1 }) end, "close_nicely", 1, "'timeout'" },
        { function() connection.connect(1, 80) end, "connect", 1, "string" },
        { function() connection.connect("h", 70000) end, "connect", 2, "port" },
        { function() connection.connect("h", 1, nil, "x") end, "connect", 4, "table" },
        { function() connection.connect("h", 1, nil, { timeout = 0 }) end, "connect", 4, "'timeout'" },
        { function() connection.connect("h", 1, nil, { timeout = 1, ping = "" }) end, "connect", 4, "'ping'" },
        { function() connection.connect("h", 1, nil, { send_buffer_size = 0 }) end, "connect", 4, "'send_buffer_size'" },
        { function() connection.custom("x") end, "custom", 1, "table" },
        { function() connection.custom({ input = true }) end, "custom", 1, "'input'" },
        { function() connection.custom({ output = {} }) end, "custom", 1, "'output'" },
        { function() connection.custom({ input = math.maxinteger }) end, "custom", 1, "'input'" },
        { function() connection.custom({ output = 2 ^ 31 }) end, "custom", 1, "'output'" },
        { function() connection.custom({ remote_address = "x" }) end, "custom", 1, "'remote_address'" },
        { function() connection.spawn(42) end, "spawn", 1, "string" },
        { function() connection.make_address(1) end, "make_address", 1, "string" },
        { function() connection.listen("80") end, "listen", 1, "port" },
        { function() connection.listen(-1) end, "listen", 1, "port" },
        { function() connection.listen(0, "x") end, "listen", 2, "table" },
        { function() connection.accept_into_set({}, print, set) end, "accept_into_set", 1, "listening socket" },
        { function() connection.accept_into_set(listening, 1, set) end, "accept_into_set", 2, "function" },
        { function() connection.accept_into_set(listening, print, {}) end, "accept_into_set", 3, "set" },
        { function() connection.accept_into_set(listening, print, set, { ping = 1 }) end, "accept_into_set", 4, "'ping'" },
        { function() set:add({}) end, "add", 1, "connection" },
        { function() connection.add(set, 1) end, "add", 2, "connection" },
        { function() set:iter(1) end, "iter", 1, "function" },
        { function() connection.iter({}, print) end, "iter", 1, "set" },
        { function() connection.update_set(conn) end, "update_set", 1, "set" },
        { function() connection.each(1) end, "each", 1, "set" },
        { function() connection.waiter({}) end, "waiter", 1, "connection" },
        { function() connection.waiter_of_listening_socket(set) end, "waiter_of_listening_socket", 1, "listening socket" },
        { function() connection.waiter_of_set(conn) end, "waiter_of_set", 1, "set" },
        { function() connection.waiter_custom(1) end, "waiter_custom", 1, "table" },
        { function() connection.waiter_custom({ read = { -1 } }) end, "waiter_custom", 1, "'read'" },
        { function() connection.waiter_custom({ write = "x" }) end, "waiter_custom", 1, "'write'" },
        { function() connection.waiter_custom({ read = { coronet.backend_fd() } }) end, "waiter_custom", 1, "loop" },
        { function() connection.waiter_custom({ except = { listening:fileno() } }) end, "waiter_custom", 1, "watched" },
        { function() connection.waiter_of_list({ waiter, 1 }) end, "waiter_of_list", 1, "waiter" },
        { function() connection.wait(conn) end, "wait", 1, "waiter" },
        { function() connection.wait(waiter, { timeout = -1 }) end, "wait", 2, "'timeout'" },
        { function() connection.wait_(waiter, 0.5) end, "wait_", 2, "table" },
        { function() connection.instanciate_waiter(nil) end, "instanciate_waiter", 1, "waiter" },
        { function() sync.connect("h", -1) end, "sync.connect", 2, "port" },
        { function() sync.connect("h", 1, { timeout = "x" }) end, "sync.connect", 3, "'timeout'" },
        { function() sync_conn:send(1) end, "sync.send", 1, "string" },
        { function() sync.send(sync_conn, 1) end, "sync.send", 2, "string" },
        { function() sync_conn:receive(-1) end, "sync.receive", 1, "integer" },
        { function() sync_conn:receive(1, { timeout = -1 }) end, "sync.receive", 2, "'timeout'" },
        { function() sync.receive_line(conn) end, "sync.receive_line", 1, "connection" },
        { function() sync.close(1) end, "sync.close", 1, "connection" },
      }
    end

    it("every function, as a method and as a module function, and nothing changes", function()
      local listening, port = listener()
      local set = connection.empty_set()
      local sync_conn = assert(sync.connect("127.0.0.1", port))
      local conn = connection.connect("127.0.0.1", port)
      accept_until(listening, set, 2)
      for i, case in ipairs(cases(conn, set, listening, sync_conn)) do
        local call, name, n, word = case[1], case[2], case[3], case[4]
        local ok, err = pcall(call)
        assert.is_false(ok, "case " .. i .. " did not raise")
        assert.is_string(err, "case " .. i)
        local expected = ("bad argument #%d to 'coronet.connection.%s' ("):format(n, name)
        assert.is_truthy(err:find(expected, 1, true), ("case %d: %q lacks %q"):format(i, err, expected))
        assert.is_truthy(err:find(word, 1, true), ("case %d: %q lacks %q"):format(i, err, word))
        assert.is_truthy(err:find("connection_outside_spec.lua", 1, true), ("case %d: %q does not point at the caller"):format(i, err))
      end
      assert.equal(2, #set) -- accept_into_set with a bad option accepted nothing
      for member in set:each() do member:close() end
      conn:close()
      sync_conn:close()
      listening:close()
    end)

    it("a method called on the wrong object says 'calling ... on bad self'", function()
      local impostor = { receive = connection.receive, add = connection.add }
      local ok, err = pcall(function() impostor:receive(1) end)
      assert.is_false(ok)
      assert.matches("calling 'coronet.connection.receive' on bad self (connection expected, got table)", err, 1, true)
      ok, err = pcall(function() impostor:add(1) end)
      assert.is_false(ok)
      assert.matches("calling 'coronet.connection.add' on bad self (connection set expected, got table)", err, 1, true)
    end)

    it("a closed Lua file as input or output raises naming the option, not an internal function", function()
      local file = io.open("/dev/null")
      file:close()
      for _, option in ipairs { "input", "output" } do
        local ok, err = pcall(connection.custom, { [option] = file })
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'coronet.connection.custom' (option '" .. option .. "': ", err, 1, true)
        assert.matches("closed file", err, 1, true)
      end
    end)
  end)

  describe("waiters", function()
    after_each(settle)

    it("waiter_custom keeps its own copy of the arrays: a descriptor added later is not watched", function()
      local listening = listener()
      local list = {}
      local waiter = connection.waiter_custom({ read = list })
      list[1] = listening:fileno() -- one coronet watches: refused if given at first
      assert.is_false(connection.wait(waiter, { timeout = 0.01 }))
      assert.same({ coronet.backend_fd() }, (connection.instanciate_waiter(waiter)))
      listening:close()
    end)
  end)

  describe("a waiting call in a coroutine that is no fiber, inside a running loop", function()
    it("wait and make_address raise naming themselves and coronet.spawn", function()
      helper.run(function()
        local waiter = connection.waiter_of_list {}
        for name, call in pairs {
          wait = function() connection.wait(waiter, { timeout = 0.01 }) end,
          wait_ = function() connection.wait_(waiter, { timeout = 0.01 }) end,
          make_address = function() connection.make_address("localhost") end,
        } do
          local ok, err = pcall(coroutine.wrap(call))
          assert.is_false(ok)
          assert.matches("coronet.connection." .. name .. ":", err, 1, true)
          assert.matches("coronet.spawn", err, 1, true)
        end
      end)
    end)
  end)

  describe("every method is also a module function taking the object first", function()
    after_each(settle)

    it("connections, sets and blocking connections", function()
      for name in pairs(connection.Connection) do
        if name:sub(1, 2) ~= "__" then assert.is_function(connection[name], name) end
      end
      for name in pairs(connection.Set) do
        if name:sub(1, 2) ~= "__" then
          assert.is_function(connection[name == "update" and "update_set" or name], name)
        end
      end
      for name in pairs(sync.SyncConnection) do
        if name:sub(1, 2) ~= "__" then assert.is_function(sync[name], "sync." .. name) end
      end
      local listening, port = listener()
      local set = connection.empty_set()
      local conn = assert(sync.connect("127.0.0.1", port))
      accept_until(listening, set, 1)
      assert.is_true(sync.send(conn, "hello\n"))
      poll_until(set.members[1], function(c) return c:receive_buffer_length() == 6 end)
      set.members[1]:send("hi\nthere")
      assert.equal("hi", sync.receive_line(conn))
      assert.equal("there", sync.receive(conn, 5))
      assert.equal(port, sync.remote_address(conn).port)
      sync.close(conn)
      set.members[1]:close()
      listening:close()
    end)
  end)

  describe("sending", function()
    after_each(settle)

    it("one send larger than send_buffer_size says it can never fit (busy, nothing taken)", function()
      local client, server_side = polled_pair({ send_buffer_size = 16 })
      local ok, err, code = client:send(("x"):rep(17))
      assert.is_nil(ok)
      assert.equal("busy", code)
      assert.matches("never", tostring(err))
      assert.is_true(client:send(("x"):rep(16)))
      client:close()
      server_side:close()
    end)

    it("after a local close, state() gives the state alone: nothing more", function()
      local client, server_side = polled_pair()
      client:close()
      client:update()
      assert.equal(1, select("#", client:state()))
      assert.equal("disconnected", client:state())
      server_side:close()
    end)

    it("no ping goes out while disconnecting: the program's last bytes are the last the peer reads", function()
      helper.run(function()
        local total = 32 * 1024 * 1024 -- more than loopback's socket buffers hold: the close waits for the peer
        local got = coronet.ivar()
        local _, port = helper.server(function(_, r, w)
          coronet.sleep(t(0.7)) -- silent and not reading: the client's ping is due at 0.5
          w:write("go\n")      -- restarts the client's idle clock: the flush gets a whole timeout
          local n, tail = 0, ""
          while true do
            local chunk = r:read()
            if not chunk then break end
            n, tail = n + #chunk, #chunk >= 8 and chunk:sub(-8) or (tail .. chunk):sub(-8)
          end
          got:fill(n, tail)
        end)
        local conn = connection.connect("127.0.0.1", port, nil,
          { timeout = t(1), ping = "PING\n", send_buffer_size = 2 * total })
        poll_until(conn, function(c) return c:state() == "connected" end)
        assert.is_true(conn:send(("d"):rep(total - 4) .. "END\n"))
        conn:close_nicely({ timeout = t(10) })
        local n, tail = got:read():wait(t(10))
        assert.equal("END\n", tail:sub(-4))
        assert.equal(total, n)
      end, 30)
    end)
  end)
end)
