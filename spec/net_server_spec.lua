-- coronet.net listening and serving: net.listen, accept, accept_fork, run_server.
local coronet = require "coronet"
local net = require "coronet.net"
local helper = require "helper"

local t = helper.t

-- A stand-in for coronet.switch until it lands: attach, fork (a forked
-- fiber's error is recorded as the switch's failure) and release.
local function fake_switch()
  local sw = { resources = {}, fibers = {}, errors = {} }
  function sw.attach(self, resource)
    self.resources[#self.resources + 1] = resource
    return { remove = function() end }
  end
  function sw.fork(self, fn, ...)
    local args = table.pack(...)
    local fiber = coronet.spawn(function()
      local ok, err = pcall(fn, table.unpack(args, 1, args.n))
      if not ok then self.errors[#self.errors + 1] = err end
    end)
    self.fibers[#self.fibers + 1] = fiber
    return fiber
  end
  function sw.release(self)
    for _, fiber in ipairs(self.fibers) do fiber:join(t(2)) end
    for i = #self.resources, 1, -1 do self.resources[i]:close() end
    for _, resource in ipairs(self.resources) do assert(resource:close_finished(t(2))) end
  end
  return sw
end

local function loopback() return coronet.address("127.0.0.1", 0) end

local function listen(opts)
  local listening = assert(net.listen(loopback(), opts))
  return listening, listening:getsockname().port
end

local function exists(path) return os.rename(path, path) ~= nil end

-- Connects a client that sends `line` and then waits for the server to close.
local function client(port, line)
  return coronet.spawn(function()
    local sock, _, w = helper.connect(port)
    if line then w:write(line, "\n") end
    local data = sock:reader():contents()
    sock:close()
    return data
  end)
end

describe("net.listen", function()
  it("binds, reports its address, accepts nothing until asked and closes", function()
    helper.run(function()
      local sw = fake_switch()
      local listening, port = listen({ sw = sw })
      assert.is_true(port > 0)
      assert.are.equal("127.0.0.1", listening:getsockname().ip)
      local c = client(port, "hi")
      coronet.sleep(t(0.1))
      assert.are.equal(0, listening:stats().accepted) -- the client waits in the backlog
      local flow, address = net.accept(listening, { sw = sw })
      assert.truthy(flow)
      assert.are.equal("127.0.0.1", address.ip)
      assert.are.equal("hi", flow:reader():read_line())
      flow:writer():write("bye")
      flow:close()
      assert.are.equal("bye", c:join(t(2)))
      sw:release()
      assert.is_true(listening:is_closed())
      assert.is_true(listening:close_finished())
    end)
  end)

  it("passes backlog 0 to listen(2): a second client cannot get in", function()
    helper.run(function()
      local listening, port = listen({ backlog = 0 })
      local connected = 0
      local clients = {}
      for i = 1, 3 do
        clients[i] = coronet.spawn(function()
          local sock = coronet.tcp.connect(helper.to(port), { timeout = t(0.3) })
          if sock then
            connected = connected + 1
            coronet.sleep(t(0.4))
            sock:close()
          end
        end)
      end
      for _, c in ipairs(clients) do c:join(t(2)) end
      assert.is_true(connected < 3, "connected " .. connected)
      listening:close()
      listening:close_finished()
    end)
  end)

  it("refuses a stale unix socket file without reuse_addr, removes it with, and unlinks on close", function()
    helper.run(function()
      local path, stale = helper.unix_path("fresh"), helper.unix_path("stale")
      local first = assert(net.listen(coronet.unix_address(path)))
      assert(os.rename(path, stale)) -- the file now outlives its server
      first:close()
      first:close_finished()
      assert.is_true(exists(stale))
      local none, err, code = net.listen(coronet.unix_address(stale))
      assert.is_nil(none)
      assert.are.equal("EADDRINUSE", code)
      assert.truthy(tostring(err):find(stale, 1, true))
      local listening = assert(net.listen(coronet.unix_address(stale), { reuse_addr = true }))
      local c = coronet.spawn(function()
        local sock = helper.connect(stale)
        sock:writer():write("x\n")
        sock:reader():contents()
        sock:close()
      end)
      local flow = assert(net.accept(listening))
      assert.are.equal("x", flow:reader():read_line())
      flow:close()
      c:join(t(2))
      listening:close()
      assert.is_true(listening:close_finished())
      assert.is_false(exists(stale))
    end)
  end)

  it("sets SO_REUSEPORT when asked: two listeners share a port", function()
    helper.run(function()
      local a, port = listen({ reuse_port = true })
      local b = assert(net.listen(coronet.address("127.0.0.1", port), { reuse_port = true }))
      local none, _, code = net.listen(coronet.address("127.0.0.1", port))
      assert.is_nil(none)
      assert.are.equal("EADDRINUSE", code)
      a:close()
      b:close()
      a:close_finished()
      b:close_finished()
    end)
  end)

  it("raises on misuse", function()
    assert.has_error(function() net.listen("127.0.0.1:80") end)
    assert.has_error(function() net.listen(loopback(), { backlog = -1 }) end)
    assert.has_error(function() net.accept({}) end)
  end)
end)

describe("net.accept", function()
  it("returns closed to a waiting call when the listening socket closes", function()
    helper.run(function()
      local listening = listen()
      local waiter = coronet.spawn(function() return net.accept(listening) end)
      coronet.sleep(t(0.05))
      listening:close()
      local none, _, code = waiter:join(t(2))
      assert.is_nil(none)
      assert.are.equal("closed", code)
      listening:close_finished()
    end)
  end)

  it("takes back the credit of a call that gave up: nothing is accepted for it", function()
    helper.run(function()
      local listening, port = listen()
      local waiter = coronet.spawn(function() return net.accept(listening) end)
      coronet.sleep(t(0.05))
      waiter:cancel()
      local c = client(port, "late")
      coronet.sleep(t(0.1))
      assert.are.equal(0, listening:stats().accepted)
      local flow = assert(net.accept(listening))
      assert.are.equal("late", flow:reader():read_line())
      flow:close()
      c:join(t(2))
      listening:close()
      listening:close_finished()
    end)
  end)

  it("works again after run_server stopped", function()
    helper.run(function()
      local listening, port = listen()
      local stop = coronet.ivar()
      local server = coronet.spawn(net.run_server, listening, function() end, { stop = stop.deferred })
      coronet.sleep(t(0.05))
      stop:fill(true)
      assert.is_true(server:join(t(2)))
      local c = client(port, "after")
      local flow = assert(net.accept(listening))
      assert.are.equal("after", flow:reader():read_line())
      flow:close()
      c:join(t(2))
      listening:close()
      listening:close_finished()
    end)
  end)
end)

describe("net.accept_fork", function()
  it("runs the handler in a fiber on the switch and closes the flow after it", function()
    helper.run(function()
      local sw = fake_switch()
      local listening, port = listen({ sw = sw })
      local c = client(port, "ping")
      assert.is_true(net.accept_fork(listening, function(flow, address)
        assert.are.equal("127.0.0.1", address.ip)
        flow:writer():write(flow:reader():read_line() .. "!")
      end, { sw = sw }))
      assert.are.equal("ping!", c:join(t(2)))
      sw:release()
      assert.are.same({}, sw.errors)
    end)
  end)

  it("gives handler errors to on_error with the client's address added", function()
    helper.run(function()
      local sw = fake_switch()
      local listening, port = listen({ sw = sw })
      local seen = {}
      local function on_error(err, address) seen[#seen + 1] = { err = err, address = address } end
      local c1 = client(port)
      net.accept_fork(listening, function() error("boom") end, { sw = sw, on_error = on_error })
      local c2 = client(port)
      net.accept_fork(listening, function() error({ what = "table" }) end, { sw = sw, on_error = on_error })
      c1:join(t(2))
      c2:join(t(2))
      sw:release()
      assert.are.equal(2, #seen)
      local address = seen[1].address
      assert.are.equal("127.0.0.1", address.ip)
      assert.truthy(seen[1].err:find("connection from " .. tostring(address), 1, true))
      assert.truthy(seen[1].err:find("boom", 1, true))
      assert.are.equal("table", seen[2].err.what)
      assert.are.equal(seen[2].address, seen[2].err.address)
      assert.are.same({}, sw.errors)
    end)
  end)

  it("without on_error fails the switch", function()
    helper.run(function()
      local sw = fake_switch()
      local listening, port = listen({ sw = sw })
      local c = client(port)
      net.accept_fork(listening, function() error("unhandled") end, { sw = sw })
      c:join(t(2))
      sw:release()
      assert.are.equal(1, #sw.errors)
      assert.truthy(sw.errors[1]:find("unhandled", 1, true))
    end)
  end)
end)

-- A handler that echoes lines until EOF.
local function echo(flow)
  local r, w = flow:reader(), flow:writer()
  while true do
    local line = r:read_line()
    if not line then return end
    w:write(line, "\n")
  end
end

-- A client that sends one line, reads the echo and holds the connection
-- until `release` is determined.
local function holding_client(port, release)
  return coronet.spawn(function()
    local sock, r, w = helper.connect(port)
    w:write("x\n")
    local line = r:read_line()
    release:wait(t(5))
    sock:close()
    return line
  end)
end

describe("net.run_server", function()
  it("raises on bad options", function()
    helper.run(function()
      local listening = listen()
      assert.has_error(function() net.run_server(listening, echo, { max_connections = 0 }) end)
      assert.has_error(function() net.run_server(listening, echo, { workers = 0 }) end)
      assert.has_error(function() net.run_server(listening, echo, { stop = true }) end)
      assert.has_error(function() net.run_server(listening, 42) end)
      listening:close()
      listening:close_finished()
    end)
  end)

  it("never accepts past max_connections", function()
    helper.run(function()
      local listening, port = listen()
      local gate, stop = coronet.ivar(), coronet.ivar()
      local server = coronet.spawn(function()
        return net.run_server(listening, function(flow)
          flow:writer():write("in\n")
          gate.deferred:wait()
        end, { max_connections = 2, stop = stop.deferred })
      end)
      local greeted = 0
      local clients = {}
      for i = 1, 3 do
        clients[i] = coronet.spawn(function()
          local sock = helper.connect(port)
          if sock:reader():read_line() == "in" then greeted = greeted + 1 end
          sock:reader():contents()
          sock:close()
        end)
      end
      assert.is_true(helper.eventually(function() return greeted == 2 end))
      coronet.sleep(t(0.1))
      assert.are.equal(2, listening:stats().accepted)
      assert.are.equal(2, greeted)
      gate:fill()
      assert.is_true(helper.eventually(function() return greeted == 3 end))
      stop:fill("done")
      local value, stats = server:join(t(2))
      assert.are.equal("done", value)
      assert.are.equal(3, stats.accepted)
      assert.are.equal(3, stats.connections)
      for _, c in ipairs(clients) do c:join(t(2)) end
      listening:close()
      listening:close_finished()
    end)
  end)

  it("stops gracefully: stops accepting, lets open connections finish, returns the stop value", function()
    helper.run(function()
      local listening, port = listen()
      local stop, release = coronet.ivar(), coronet.ivar()
      local server = coronet.spawn(function()
        return net.run_server(listening, echo, { stop = stop.deferred })
      end)
      local a, b = holding_client(port, release.deferred), holding_client(port, release.deferred)
      assert.is_true(helper.eventually(function() return listening:stats().accepted == 2 end))
      coronet.sleep(t(0.05))
      stop:fill("bye")
      coronet.sleep(t(0.1))
      assert.is_false(server:is_done()) -- the two connections are still open
      local late = coronet.spawn(function()
        local sock = helper.connect(port) -- waits in the backlog: nobody accepts it
        sock:reader():contents()
        sock:close()
      end)
      coronet.sleep(t(0.1))
      assert.are.equal(2, listening:stats().accepted)
      release:fill()
      assert.are.equal("x", a:join(t(2)))
      assert.are.equal("x", b:join(t(2)))
      local value, stats = server:join(t(2))
      assert.are.equal("bye", value, tostring(stats))
      assert.are.same({ accepted = 2, connections = 2, handler_errors = 0, workers = 1 }, stats)
      listening:close()
      late:join(t(2))
      listening:close_finished()
    end)
  end)

  it("closes every connection at once when its fiber is cancelled", function()
    helper.run(function()
      local listening, port = listen()
      local release = coronet.ivar()
      local server = coronet.spawn(function()
        return net.run_server(listening, function(flow)
          flow:writer():write("hello\n")
          coronet.sleep(t(60))
        end)
      end)
      local ends = {}
      local clients = {}
      for i = 1, 2 do
        clients[i] = coronet.spawn(function()
          local sock, r = helper.connect(port)
          r:read_line()
          local _, _, code = r:contents()
          ends[#ends + 1] = code or "eof"
          sock:close()
        end)
      end
      assert.is_true(helper.eventually(function() return listening:num_connections() == 2 end))
      local started = coronet.now()
      server:cancel()
      local none, _, code = server:join(t(2))
      assert.is_nil(none)
      assert.are.equal("cancelled", code)
      for _, c in ipairs(clients) do c:join(t(2)) end
      assert.are.equal(2, #ends)
      assert.is_true(coronet.now() - started < t(1))
      release:fill()
      listening:close()
      listening:close_finished()
    end)
  end)

  it("keeps serving after a handler error that on_error handles, with the address added", function()
    helper.run(function()
      local listening, port = listen()
      local stop = coronet.ivar()
      local seen = {}
      local server = coronet.spawn(function()
        return net.run_server(listening, function(flow)
          local line = flow:reader():read_line()
          if line == "fail" then error("bad request") end
          flow:writer():write("ok\n")
        end, { stop = stop.deferred, on_error = function(err, address) seen[#seen + 1] = { err, address } end })
      end)
      client(port, "fail"):join(t(2))
      assert.are.equal("ok\n", client(port, "fine"):join(t(2)))
      stop:fill(true)
      local _, stats = server:join(t(2))
      assert.are.equal(1, #seen)
      assert.truthy(seen[1][1]:find("connection from 127.0.0.1:", 1, true))
      assert.are.equal("127.0.0.1", seen[1][2].ip)
      assert.are.equal(1, stats.handler_errors)
      assert.are.equal(2, stats.connections)
      listening:close()
      listening:close_finished()
    end)
  end)

  it("without on_error, a handler error closes the connections and is raised", function()
    helper.run(function()
      local listening, port = listen()
      local server = coronet.spawn(function()
        local ok, err = pcall(net.run_server, listening, function(flow)
          if flow:reader():read_line() == "fail" then error("fatal") end
          coronet.sleep(t(60))
        end)
        return ok, err
      end)
      local holder = client(port, "hold")
      assert.is_true(helper.eventually(function() return listening:num_connections() == 1 end))
      client(port, "fail"):join(t(2))
      local ok, err = server:join(t(2))
      assert.is_false(ok)
      assert.truthy(tostring(err):find("fatal", 1, true))
      holder:join(t(2))
      assert.are.equal(0, listening:num_connections())
      listening:close()
      listening:close_finished()
    end)
  end)

  it("ends with closed when the listening socket closes, after its connections finished", function()
    helper.run(function()
      local listening, port = listen()
      local server = coronet.spawn(function() return net.run_server(listening, echo) end)
      local release = coronet.ivar()
      local c = holding_client(port, release.deferred)
      assert.is_true(helper.eventually(function() return listening:num_connections() == 1 end))
      listening:close()
      coronet.sleep(t(0.05))
      assert.is_false(server:is_done())
      release:fill()
      c:join(t(2))
      local none, _, code = server:join(t(2))
      assert.is_nil(none)
      assert.are.equal("closed", code)
      listening:close_finished()
    end)
  end)
end)
