-- spec/tcp_server_spec.lua: coronet.tcp.Server (lua/coronet/tcp_server.lua).
local helper = require "helper"
local coronet = require "coronet"
local core = require "coronet.core"

local tcp = coronet.tcp
local Server = tcp.Server
local t = helper.t

-- Runs fn like helper.run but expects the run to raise; returns the raised error.
local function run_failing(fn, limit)
  local ok, err = pcall(helper.run, fn, limit)
  assert.is_false(ok, "coronet.run should have raised")
  helper.assert_clean()
  return err
end

describe("coronet.tcp.Server", function()
  describe("create", function()
    it("calls handler(address, reader, writer) with the client's address value", function()
      helper.run(function()
        local seen = {}
        local server, port = helper.server(function(address, reader, writer)
          seen.address, seen.reader, seen.writer = address, reader, writer
          helper.echo(address, reader, writer)
        end)
        local sock, r, w = helper.connect(port)
        assert(w:write("hello\n"))
        assert.are.equal("hello", r:read_line({ timeout = t(2) }))
        local mine = sock:getsockname()
        assert.is_true(core.is_address(seen.address))
        assert.are.equal("inet", seen.address.family)
        assert.are.equal("127.0.0.1", seen.address.ip)
        assert.are.equal(mine.port, seen.address.port)
        assert.is_true(seen.address == mine)
        assert.matches("^coronet%.reader", tostring(seen.reader))
        assert.matches("^coronet%.writer", tostring(seen.writer))
        sock:close()
        helper.await(server:close())
      end)
    end)

    it("closes the reader and writer when the handler returns (client reads EOF)", function()
      helper.run(function()
        local server, port = helper.server(function(_, _, writer)
          writer:write("bye")
        end)
        local sock, r = helper.connect(port)
        assert.are.equal("bye", r:contents({ timeout = t(2) }))
        local data, err, code = r:read(nil, { timeout = t(2) })
        assert.is_nil(data)
        assert.are.equal("closed", code)
        assert.are.equal("closed", err.code)
        sock:close()
        helper.await(server:close())
      end)
    end)

    it("raises on misuse: a non-function handler or a bad where_to", function()
      helper.run(function()
        local where = tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0))
        assert.has_error(function() Server.create(where, "nope") end)
        assert.has_error(function() Server.create_sock(where, 42) end)
        assert.has_error(function() Server.create_sock({}, function() end) end)
        assert.has_error(function() Server.create(where, function() end, { on_handler_error = "explode" }) end)
      end)
    end)
  end)

  describe("create_sock", function()
    it("calls handler(address, socket) with the connected socket", function()
      helper.run(function()
        local seen = {}
        local where = tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0))
        local server = assert(Server.create_sock(where, function(address, sock)
          seen.address, seen.peer = address, sock:getpeername()
          seen.tostring = tostring(sock)
          local r, w = sock:reader(), sock:writer()
          local n = r:really_read(4)
          w:write(n:upper())
        end))
        local sock, r, w = helper.connect(server:listening_on())
        assert(w:write("abcd"))
        assert.are.equal("ABCD", r:really_read(4, { timeout = t(2) }))
        assert.is_true(seen.address == sock:getsockname())
        assert.is_true(seen.peer == seen.address)
        assert.matches("^coronet%.socket", seen.tostring)
        sock:close()
        helper.await(server:close())
      end)
    end)
  end)

  describe("create_inet / create_sock_inet", function()
    it("serve an inet address and refuse a unix one", function()
      helper.run(function()
        local where = tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0))
        local server = assert(Server.create_inet(where, helper.echo))
        local sock, r, w = helper.connect(server:listening_on())
        assert(w:write("inet\n"))
        assert.are.equal("inet", r:read_line({ timeout = t(2) }))
        sock:close()
        local server2 = assert(Server.create_sock_inet(where, function(_, s) s:writer():write("x") end))
        local sock2, r2 = helper.connect(server2:listening_on())
        assert.are.equal("x", r2:really_read(1, { timeout = t(2) }))
        sock2:close()
        local unix = tcp.Where_to_listen.on_file(helper.unix_path("inet"))
        assert.has_error(function() Server.create_inet(unix, helper.echo) end)
        assert.has_error(function() Server.create_sock_inet(unix, helper.echo) end)
        helper.await(server:close())
        helper.await(server2:close())
      end)
    end)
  end)

  describe("bind errors", function()
    it("returns nil, err, \"EADDRINUSE\" when the port is taken", function()
      helper.run(function()
        local server, port = helper.server(helper.echo)
        local where = tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", port))
        local s2, err, code = Server.create(where, helper.echo)
        assert.is_nil(s2)
        assert.are.equal("EADDRINUSE", code)
        assert.are.equal("EADDRINUSE", err.code)
        assert.is_number(err.errno)
        assert.is_truthy(tostring(err):find("127.0.0.1:" .. port, 1, true))
        -- the first server is unaffected
        local sock, r, w = helper.connect(port)
        assert(w:write("still\n"))
        assert.are.equal("still", r:read_line({ timeout = t(2) }))
        sock:close()
        helper.await(server:close())
      end)
    end)

    it("lets two servers share a port with reuse_port", function()
      helper.run(function()
        local where0 = tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0))
        local a = assert(Server.create(where0, helper.echo, { reuse_port = true }))
        local port = a:listening_on()
        local where = tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", port))
        local b, err, code = Server.create(where, helper.echo, { reuse_port = true })
        assert.is_truthy(b, tostring(err) .. " " .. tostring(code))
        assert.are.equal(port, b:listening_on())
        helper.await(a:close())
        helper.await(b:close())
      end)
    end)
  end)

  describe("listening_on / listening_on_address / listening_socket", function()
    it("report the port, the address value and an integer descriptor", function()
      helper.run(function()
        local server, port = helper.server(helper.echo)
        assert.are.equal("integer", math.type(port))
        assert.is_true(port > 0 and port <= 65535)
        local address = server:listening_on_address()
        assert.is_true(core.is_address(address))
        assert.are.equal("inet", address.family)
        assert.are.equal("127.0.0.1", address.ip)
        assert.are.equal(port, address.port)
        assert.is_true(address == coronet.address("127.0.0.1", port))
        local fd = server:listening_socket()
        assert.are.equal("integer", math.type(fd))
        assert.is_true(fd > 2)
        -- the descriptor is ours: /proc shows it as a socket
        local pid = io.open("/proc/self/stat"):read("n")
        local link = io.popen(("readlink /proc/%d/fd/%d"):format(pid, fd)):read("l")
        assert.matches("^socket:", link)
        helper.await(server:close())
      end)
    end)

    it("on_port_chosen_by_os listens on every interface", function()
      helper.run(function()
        local server = assert(Server.create(tcp.Where_to_listen.on_port_chosen_by_os(), helper.echo))
        local port = server:listening_on()
        assert.is_true(port > 0)
        assert.are.equal("0.0.0.0", server:listening_on_address().ip)
        local sock, r, w = helper.connect(port)
        assert(w:write("any\n"))
        assert.are.equal("any", r:read_line({ timeout = t(2) }))
        sock:close()
        helper.await(server:close())
      end)
    end)
  end)

  describe("num_connections", function()
    it("counts a connection until its descriptor is closed", function()
      helper.run(function()
        local release = coronet.ivar()
        local started, ended = 0, 0
        local server, port = helper.server(function(_, reader)
          started = started + 1
          release.deferred:wait()
          ended = ended + 1
          reader:close()
        end)
        assert.are.equal(0, server:num_connections())
        local sock1 = helper.connect(port)
        local sock2 = helper.connect(port)
        assert.is_true(helper.eventually(function() return started == 2 end))
        assert.are.equal(2, server:num_connections())
        assert.are.equal(2, server:stats().connections)
        release:fill()
        assert.is_true(helper.eventually(function() return ended == 2 end))
        assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
        assert.are.equal(0, server:stats().connections)
        assert.are.equal(2, server:stats().accepted)
        sock1:close()
        sock2:close()
        helper.await(server:close())
      end)
    end)

    it("still counts a connection whose handler returned while the socket is open elsewhere", function()
      helper.run(function()
        local kept
        local server, port = helper.server(function(_, sock)
          kept = sock
          -- the handler returns; the server closes the socket gracefully
        end)
        local sock, r = helper.connect(port)
        assert.is_true(helper.eventually(function() return kept ~= nil end))
        -- the graceful close finishes and the descriptor goes away
        local data, _, code = r:read(nil, { timeout = t(2) })
        assert.is_nil(data)
        assert.are.equal("closed", code)
        assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
        assert.is_true(kept:is_closed())
        sock:close()
        helper.await(server:close())
      end)
    end)
  end)

  describe("max_connections", function()
    it("= 1 holds the second client's handler until the first connection closes", function()
      helper.run(function()
        local events = {}
        local release = coronet.ivar()
        local server, port = helper.server(function(_, reader, writer)
          local name = reader:read_line()
          events[#events + 1] = { what = "start " .. name, at = coronet.now() }
          if name == "A" then release.deferred:wait() end
          writer:write("hi " .. name .. "\n")
          writer:flush()
          events[#events + 1] = { what = "end " .. name, at = coronet.now() }
        end, { max_connections = 1 })
        local sa, ra, wa = helper.connect(port)
        wa:write("A\n")
        assert.is_true(helper.eventually(function() return #events == 1 end))
        -- B connects at the TCP level (backlog) and can send, but is not served
        local sb, rb, wb = helper.connect(port)
        assert(wb:write("B\n"))
        local line, _, code = rb:read_line({ timeout = t(0.3) })
        assert.is_nil(line)
        assert.are.equal("timeout", code)
        assert.are.equal(1, #events)
        assert.are.equal(1, server:num_connections())
        assert.are.equal(1, server:stats().accepted)
        local released_at = coronet.now()
        release:fill()
        assert.are.equal("hi A", ra:read_line({ timeout = t(2) }))
        assert.are.equal("hi B", rb:read_line({ timeout = t(2) }))
        assert.are.same({ "start A", "end A", "start B", "end B" },
          { events[1].what, events[2].what, events[3].what, events[4].what })
        assert.is_true(events[3].at >= released_at)
        assert.is_true(events[3].at >= events[2].at)
        assert.are.equal(2, server:stats().accepted)
        sa:close()
        sb:close()
        helper.await(server:close())
      end)
    end)
  end)

  describe("max_accepts_per_batch", function()
    it("is accepted as an option and every client is still served", function()
      helper.run(function()
        local server, port = helper.server(helper.echo, { max_accepts_per_batch = 1 })
        local fibers = {}
        for i = 1, 5 do
          fibers[i] = coronet.spawn(function()
            local sock, r, w = helper.connect(port)
            w:write("n" .. i .. "\n")
            local line = r:read_line({ timeout = t(2) })
            sock:close()
            return line
          end)
        end
        for i = 1, 5 do
          assert.are.equal("n" .. i, fibers[i]:join(t(3)))
        end
        assert.are.equal(5, server:stats().accepted)
        helper.await(server:close())
      end)
    end)
  end)

  describe("set_drop_incoming_connections", function()
    it("accepts and closes at once without running the handler, counting dropped", function()
      helper.run(function()
        local calls = 0
        local server, port = helper.server(function(...)
          calls = calls + 1
          helper.echo(...)
        end)
        server:set_drop_incoming_connections(true)
        for _ = 1, 3 do
          local sock, r = helper.connect(port)
          local data, err, code = r:read(nil, { timeout = t(2) })
          assert.is_nil(data)
          assert.are.equal("closed", code)
          assert.are.equal("closed", err.code)
          sock:close()
        end
        assert.are.equal(0, calls)
        local stats = server:stats()
        assert.are.equal(3, stats.dropped)
        assert.are.equal(3, stats.accepted)
        assert.are.equal(0, stats.connections)
        assert.are.equal(0, server:num_connections())
        -- turning it off serves again
        server:set_drop_incoming_connections(false)
        local sock, r, w = helper.connect(port)
        assert(w:write("back\n"))
        assert.are.equal("back", r:read_line({ timeout = t(2) }))
        assert.are.equal(1, calls)
        assert.are.equal(3, server:stats().dropped)
        assert.are.equal(4, server:stats().accepted)
        sock:close()
        helper.await(server:close())
      end)
    end)
  end)

  describe("on_handler_error", function()
    it("a handler raising on the read that run's teardown cancelled is not a handler error", function()
      local result = coronet.run(function()
        local _, port = helper.server(function(_, reader)
          assert(reader:read_line()) -- raises "cancelled" when the run ends
        end)
        local client = helper.connect(port) -- held: collecting it would close it and end the read
        coronet.sleep(t(0.05)) -- the handler is waiting on its read
        assert(client)
        return "main returned"
      end)
      assert.are.equal("main returned", result)
      helper.assert_clean()
    end)

    it("\"raise\" (the default) makes coronet.run raise the handler's error and closes the server", function()
      local server
      local err = run_failing(function()
        local port
        server, port = helper.server(function() error("boom-raise", 0) end)
        local sock, r = helper.connect(port)
        r:read(nil, { timeout = t(5) })
        sock:close()
        error("not reached: the run should have ended with the handler's error")
      end)
      assert.is_string(err)
      assert.is_truthy(err:find("boom-raise", 1, true))
      assert.is_truthy(tostring(server):find(", closed)", 1, true))
      assert.is_true(server:is_closed())
    end)

    it("\"raise\" passes an error value through unchanged", function()
      local token = setmetatable({}, { __tostring = function() return "token-error" end })
      local err = run_failing(function()
        local _, port = helper.server(function() error(token) end, { on_handler_error = "raise" })
        local sock, r = helper.connect(port)
        r:read(nil, { timeout = t(5) })
        sock:close()
        error("not reached")
      end)
      assert.are.equal(token, err)
    end)

    it("\"ignore\" keeps serving and logs a line through the logger", function()
      local lines = {}
      coronet.set_logger(function(msg) lines[#lines + 1] = msg end)
      local ok, err = pcall(helper.run, function()
        local server, port = helper.server(function(address, reader, writer)
          local line = reader:read_line()
          if line == "fail" then error("boom-ignored", 0) end
          writer:write("ok " .. line .. "\n")
        end, { on_handler_error = "ignore" })
        local sock1, r1, w1 = helper.connect(port)
        w1:write("fail\n")
        local data, _, code = r1:read(nil, { timeout = t(2) })
        assert.is_nil(data)
        assert.are.equal("closed", code)
        local me = sock1:getsockname()
        sock1:close()
        local sock2, r2, w2 = helper.connect(port)
        w2:write("fine\n")
        assert.are.equal("ok fine", r2:read_line({ timeout = t(2) }))
        sock2:close()
        assert.is_false(server:is_closed())
        assert.are.equal(1, #lines)
        assert.is_truthy(lines[1]:find("boom-ignored", 1, true))
        assert.is_truthy(lines[1]:find(tostring(me), 1, true))
        helper.await(server:close())
      end)
      coronet.set_logger(nil)
      assert(ok, err)
    end)

    it("a function is called with (address, err) and the server keeps serving", function()
      helper.run(function()
        local calls = {}
        local server, port = helper.server(function(_, reader, writer)
          local line = reader:read_line()
          if line == "fail" then error("boom-fn", 0) end
          writer:write("ok " .. line .. "\n")
        end, { on_handler_error = function(address, err) calls[#calls + 1] = { address = address, err = err } end })
        local sock1, r1, w1 = helper.connect(port)
        local me = sock1:getsockname()
        w1:write("fail\n")
        local data, _, code = r1:read(nil, { timeout = t(2) })
        assert.is_nil(data)
        assert.are.equal("closed", code)
        sock1:close()
        assert.is_true(helper.eventually(function() return #calls == 1 end))
        assert.is_true(core.is_address(calls[1].address))
        assert.is_true(calls[1].address == me)
        assert.is_truthy(tostring(calls[1].err):find("boom-fn", 1, true))
        local sock2, r2, w2 = helper.connect(port)
        w2:write("fine\n")
        assert.are.equal("ok fine", r2:read_line({ timeout = t(2) }))
        sock2:close()
        assert.is_false(server:is_closed())
        assert.are.equal(1, #calls)
        helper.await(server:close())
      end)
    end)

    it("a function that raises stops the server and makes run raise its error", function()
      local server
      local got
      local err = run_failing(function()
        local port
        server, port = helper.server(function() error("boom-inner", 0) end, {
          on_handler_error = function(_, e)
            got = e
            error("handler-error-fn-failed", 0)
          end,
        })
        local sock, r = helper.connect(port)
        r:read(nil, { timeout = t(5) })
        sock:close()
        error("not reached")
      end)
      assert.are.equal("handler-error-fn-failed", err)
      assert.is_truthy(tostring(got):find("boom-inner", 1, true))
      assert.is_truthy(tostring(server):find(", closed)", 1, true))
    end)
  end)

  describe("close", function()
    it("is idempotent and returns the same close_finished deferred", function()
      helper.run(function()
        local server, port = helper.server(helper.echo)
        assert.is_false(server:is_closed())
        local d1 = server:close()
        local d2 = server:close()
        assert.are.equal(d1, d2)
        assert.are.equal(d1, server:close_finished())
        assert.is_true(server:is_closed())
        helper.await(d1)
        assert.are.equal(d1, server:close())
        local sock, err, code = tcp.connect(helper.to(port))
        assert.is_nil(sock)
        assert.are.equal("ECONNREFUSED", code)
        assert.are.equal("refused", err.kind)
      end)
    end)

    it("without close_existing_connections leaves existing connections working", function()
      helper.run(function()
        local handler_done = false
        local server, port = helper.server(function(...)
          helper.echo(...)
          handler_done = true
        end)
        local sock, r, w = helper.connect(port)
        w:write("before\n")
        assert.are.equal("before", r:read_line({ timeout = t(2) }))
        local finished = server:close()
        helper.await(finished)
        local both = server:close_finished_and_handlers_determined()
        -- the listener is gone but the connection is served
        local s2, _, code = tcp.connect(helper.to(port))
        assert.is_nil(s2)
        assert.are.equal("ECONNREFUSED", code)
        w:write("after\n")
        assert.are.equal("after", r:read_line({ timeout = t(2) }))
        assert.are.equal(1, server:num_connections())
        coronet.sleep(t(0.05))
        assert.is_false(both:is_determined())
        assert.is_false(handler_done)
        sock:close()
        helper.await(both)
        assert.is_true(handler_done)
      end)
    end)

    it("with close_existing_connections closes readers with \"closed\" before close_finished", function()
      helper.run(function()
        local results = {}
        local server, port = helper.server(function(_, reader, writer)
          writer:write("ready\n")
          local line, err, code = reader:read_line()
          results[#results + 1] = { line = line, err = err, code = code }
        end)
        local socks = {}
        for i = 1, 2 do
          local sock, r = helper.connect(port)
          assert.are.equal("ready", r:read_line({ timeout = t(2) }))
          socks[i] = { sock = sock, r = r }
        end
        assert.are.equal(2, server:num_connections())
        local observed = {}
        local finished = server:close({ close_existing_connections = true })
        assert.is_false(finished:is_determined())
        finished:upon(function()
          observed.connections = server:num_connections()
          observed.handlers = #results
        end)
        helper.await(finished)
        coronet.sleep(0) -- let the upon callback run
        assert.is_true(helper.eventually(function() return observed.connections ~= nil end))
        assert.are.equal(0, observed.connections)
        assert.is_true(helper.eventually(function() return #results == 2 end))
        for i = 1, 2 do
          assert.is_nil(results[i].line)
          assert.are.equal("closed", results[i].code)
          assert.are.equal("closed", results[i].err.code)
          local data, _, code = socks[i].r:read(nil, { timeout = t(2) })
          assert.is_nil(data)
          assert.are.equal("closed", code)
          socks[i].sock:close()
        end
        helper.await(server:close_finished_and_handlers_determined())
      end)
    end)

    it("close{close_existing_connections=true} after a plain close still closes existing connections", function()
      helper.run(function()
        local result
        local server, port = helper.server(function(_, reader, writer)
          while true do
            local line, _, code = reader:read_line()
            if not line then result = code return end
            writer:write(line .. "\n")
          end
        end)
        local sock, r, w = helper.connect(port)
        w:write("one\n")
        assert.are.equal("one", r:read_line({ timeout = t(2) }))
        local d = server:close()
        helper.await(d)
        w:write("two\n")
        assert.are.equal("two", r:read_line({ timeout = t(2) }))
        local all = server:close({ close_existing_connections = true }) -- asks for more: a new deferred
        assert.are_not.equal(d, all)
        helper.await(all)
        assert.is_true(helper.eventually(function() return result ~= nil end))
        assert.are.equal("closed", result)
        local data, _, code = r:read(nil, { timeout = t(2) })
        assert.is_nil(data)
        assert.are.equal("closed", code)
        assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
        sock:close()
      end)
    end)

    -- Two connections accepted in one batch: the first handler closes the server
    -- before the second connection's fiber has started.
    it("starts no handler after close, even for a connection already accepted", function()
      helper.run(function()
        local starts = 0
        local server, port
        server, port = helper.server(function(_, reader)
          starts = starts + 1
          server:close()
          reader:read(nil, { timeout = t(0.5) })
        end)
        -- two clients connect in the same loop turn: one accept batch takes both
        local socks = {}
        local f1 = coronet.spawn(function() socks[1] = helper.connect(port) end)
        local f2 = coronet.spawn(function() socks[2] = helper.connect(port) end)
        f1:join(t(2))
        f2:join(t(2))
        helper.await(server:close_finished())
        coronet.sleep(t(0.1))
        assert.are.equal(2, server:stats().accepted) -- both were accepted before close
        assert.are.equal(1, starts)
        for i = 1, 2 do socks[i]:close() end
        helper.await(server:close_finished_and_handlers_determined())
      end)
    end)

    it("close_finished_and_handlers_determined waits for handlers to return", function()
      helper.run(function()
        local release = coronet.ivar()
        local returned, started = false, false
        local server, port = helper.server(function()
          started = true
          release.deferred:wait()
          returned = true
        end)
        local sock = helper.connect(port)
        assert.is_true(helper.eventually(function() return started end))
        local both = server:close_finished_and_handlers_determined()
        helper.await(server:close())
        coronet.sleep(t(0.05))
        assert.is_false(both:is_determined())
        release:fill()
        helper.await(both)
        assert.is_true(returned)
        sock:close()
      end)
    end)

    it("close_finished_and_handlers_determined is determined with no connections", function()
      helper.run(function()
        local server = helper.server(helper.echo)
        local both = server:close_finished_and_handlers_determined()
        assert.is_false(both:is_determined())
        server:close()
        helper.await(both)
        assert.is_true(server:close_finished():is_determined())
      end)
    end)
  end)

  describe("stats", function()
    it("counts accepted, connections, bytes_in and bytes_out", function()
      helper.run(function()
        local got = coronet.ivar()
        local server, port = helper.server(function(_, reader, writer)
          local data = reader:really_read(5)
          writer:write("1234567")
          writer:flush()
          got:fill(data)
          reader:read() -- until EOF
        end)
        local s0 = server:stats()
        assert.are.same({ connections = 0, accepted = 0, dropped = 0, accept_errors = 0, bytes_in = 0, bytes_out = 0 }, s0)
        local sock, r, w = helper.connect(port)
        w:write("abcde")
        assert.are.equal("1234567", r:really_read(7, { timeout = t(2) }))
        assert.are.equal("abcde", got.deferred:wait(t(2)))
        local live = server:stats()
        assert.are.equal(1, live.accepted)
        assert.are.equal(1, live.connections)
        assert.are.equal(5, live.bytes_in)
        assert.are.equal(7, live.bytes_out)
        sock:close()
        assert.is_true(helper.eventually(function() return server:stats().connections == 0 end))
        local after = server:stats()
        assert.are.same({ connections = 0, accepted = 1, dropped = 0, accept_errors = 0, bytes_in = 5, bytes_out = 7 }, after)
        helper.await(server:close())
        assert.are.equal(7, server:stats().bytes_out)
      end)
    end)
  end)

  describe("tostring", function()
    it("names the listening address and shows when closed", function()
      helper.run(function()
        local server, port = helper.server(helper.echo)
        assert.are.equal(("coronet.server (127.0.0.1:%d)"):format(port), tostring(server))
        helper.await(server:close())
        assert.are.equal(("coronet.server (127.0.0.1:%d, closed)"):format(port), tostring(server))
      end)
    end)
  end)
end)

describe("coronet.tcp.Server options", function()
  it("create binds and listens before returning and never yields", function()
    helper.run(function()
      local other_ran = false
      coronet.spawn(function() other_ran = true end)
      local server, port = helper.server(helper.echo)
      assert.is_false(other_ran) -- create did not yield
      local sock, r, w = helper.connect(port)
      assert(w:write("up\n"))
      assert.are.equal("up", r:read_line({ timeout = t(2) }))
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("reader_buffer_size and writer_buffer_size reach each connection", function()
    helper.run(function()
      local got = coronet.ivar()
      local server, port = helper.server(function(_, reader, writer)
        got:fill(reader:capacity(), writer:hwm())
      end, { reader_buffer_size = 3000, writer_buffer_size = 5000 })
      local sock = helper.connect(port)
      local cap, hwm = got.deferred:wait(t(2))
      assert.are.equal(3000, cap)
      assert.are.equal(5000, hwm)
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("backlog bounds the kernel's queue: past max_connections plus the queue, a connect times out", function()
    helper.run(function()
      local release = coronet.ivar()
      local server, port = helper.server(function() release.deferred:wait() end, { max_connections = 1, backlog = 1 })
      local held = {}
      for i = 1, 3 do held[i] = assert(tcp.connect_sock(helper.to(port), { timeout = t(2) })) end
      local sock, _, code = tcp.connect_sock(helper.to(port), { timeout = t(0.3) })
      if sock then sock:close() end
      assert.is_nil(sock)
      assert.are.equal("timeout", code)
      assert.are.equal(1, server:num_connections())
      release:fill()
      for i = 1, 3 do held[i]:close() end
      helper.await(server:close())
    end)
  end)

  it("buffer_age_limit: a handler writing to a client that never reads gets stalled", function()
    helper.run(function()
      local result = coronet.ivar()
      local server, port = helper.server(function(_, _, writer)
        for _ = 1, 32 do
          local ok, _, code = writer:write(string.rep("s", 1024 * 1024))
          if not ok then result:fill(code) return end
        end
        local _, _, code = writer:flush(t(5))
        result:fill(code)
      end, { buffer_age_limit = t(0.3), writer_buffer_size = 256 * 1024 * 1024 })
      local sock = helper.connect(port) -- never reads
      local code = result.deferred:wait(t(6))
      assert.equal("stalled", code)
      sock:abort()
      helper.await(server:close())
    end, 15)
  end)

  it("close_timeout bounds the final flush after the handler returns to a client that never reads", function()
    helper.run(function()
      local server, port = helper.server(function(_, _, writer)
        writer:write(string.rep("c", 32 * 1024 * 1024)) -- below the mark: returns at once
      end, { writer_buffer_size = 64 * 1024 * 1024, close_timeout = t(0.3) })
      local sock, r = helper.connect(port) -- does not read while the server closes
      assert.is_true(helper.eventually(function() return server:num_connections() == 1 end))
      local t0 = coronet.now()
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end, 4))
      local elapsed = coronet.now() - t0
      assert.is_true(elapsed >= t(0.2), "elapsed " .. elapsed)
      local n = 0
      while true do
        local data = r:read({ timeout = t(1) })
        if not data then break end
        n = n + #data
      end
      assert.is_true(n < 32 * 1024 * 1024, "the whole payload arrived: the flush was not cut short")
      sock:close()
      helper.await(server:close())
    end, 15)
  end)
end)

describe("accept errors (EMFILE)", function()
  it("pause accepting with a logged line, never spin, and accepting resumes when descriptors free", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local coronet = require "coronet"
local tcp = coronet.tcp
local scale = tonumber(os.getenv("CORONET_TEST_TIMESCALE") or "1") or 1
local lines = {}
coronet.set_logger(function(m) lines[#lines + 1] = m end)
coronet.run(function()
  local server = assert(tcp.Server.create(tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0)),
    function(_, r, w) local l = r:read_line() if l then w:write(l, "\n") w:flush() end r:read() end))
  local where = tcp.Where_to_connect.of_host_and_port("127.0.0.1", server:listening_on())
  local socks, code = {}, nil
  for _ = 1, 200 do
    local s, _, c = tcp.connect(where, { timeout = 2 * scale })
    if not s then code = c break end
    socks[#socks + 1] = s
    coronet.sleep(0.002)
  end
  coronet.sleep(0.1 * scale)
  local c0 = os.clock()
  coronet.sleep(0.5 * scale)
  local cpu = os.clock() - c0
  local errors_seen = server:stats().accept_errors
  for i = 1, 10 do socks[i]:close() end
  local served = false
  local deadline = coronet.now() + 5 * scale
  while not served and coronet.now() < deadline do
    local s, r, w = tcp.connect(where, { timeout = 2 * scale })
    if s then
      w:write("ping\n")
      served = r:read_line({ timeout = 3 * scale }) == "ping"
      s:close()
    end
    coronet.sleep(0.05)
  end
  io.write(tostring(code), "|", tostring(errors_seen > 0), "|", tostring(cpu < 0.25 * scale), "|",
           tostring(served), "|", tostring(server:is_closed()), "|", lines[1] or "no log line")
  for _, s in ipairs(socks) do s:close() end
  server:close()
end)
]])
    f:close()
    local p = assert(io.popen("ulimit -n 40 && exec lua5.4 " .. script .. " 2>&1"))
    local out = p:read("a")
    p:close()
    os.remove(script)
    local code, errs, calm, served, closed, line = out:match("^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$")
    assert.are.equal("EMFILE", code, out)
    assert.are.equal("true", errs, out) -- stats().accept_errors counted it
    assert.are.equal("true", calm, out) -- no spinning while paused
    assert.are.equal("true", served, out) -- accepting resumed
    assert.are.equal("false", closed, out) -- the server never stopped for good
    assert.matches("accept on 127.0.0.1:%d+ failed: too many open files; pausing accepts", line)
  end)
end)

describe("examples", function()
  local function start_example(_, name) return helper.start_example(name) end
  local stop_example = helper.stop_example

  it("echo_server.lua finds the module from any directory, serves until SIGTERM; client.lua talks to it", function()
    helper.run(function()
      local root = io.popen("pwd"):read("l")
      local pid, port, log = start_example(root, "echo_server.lua")
      local sock, r, w = helper.connect(port)
      assert(w:write("bytes\n"))
      assert.are.equal("bytes", r:read_line({ timeout = t(2) }))
      sock:close()
      -- the client example, also run from another directory (it blocks this loop
      -- briefly, but the echo server is another process)
      local c = assert(io.popen(("cd / && lua5.4 %s/examples/client.lua 127.0.0.1 %d one two 2>&1"):format(root, port)))
      local out = c:read("a")
      c:close()
      assert.are.equal("one\ntwo\n", out)
      stop_example(pid, log, "echo_server.lua")
    end)
  end)
  it("chat_server.lua relays each line to the other members and tells them who joined and left", function()
    helper.run(function()
      local pid, port, log = start_example(io.popen("pwd"):read("l"), "chat_server.lua")
      local a, ra, wa = helper.connect(port)
      assert.matches("^welcome, 127%.0%.0%.1:%d+$", ra:read_line({ timeout = t(2) }))
      local b, rb, wb = helper.connect(port)
      assert.matches("^welcome, ", rb:read_line({ timeout = t(2) }))
      local b_name = tostring(b:getsockname())
      assert.equal(b_name .. " joined", ra:read_line({ timeout = t(2) }))
      wa:write("hello there\n")
      assert.equal(tostring(a:getsockname()) .. ": hello there", rb:read_line({ timeout = t(2) }))
      wb:write("/quit\n")
      assert.equal(b_name .. " left", ra:read_line({ timeout = t(2) }))
      local _, _, code = rb:read_line({ timeout = t(2) })
      assert.equal("closed", code)
      a:close()
      b:close()
      stop_example(pid, log, "chat_server.lua")
    end)
  end)
end)
