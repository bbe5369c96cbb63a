-- The core server's polling interface for coronet.connection (Procord):
-- server:try_accept() takes what is pending now, never waiting, and
-- server:wait_pending() waits until a client is pending, accepting nothing.
local coronet = require "coronet"
local core = require "coronet.core"
local net = require "coronet.net"
local helper = require "helper"

local t = helper.t

local function loopback() return coronet.address("127.0.0.1", 0) end

-- A listening socket of coronet.net (its core server stays paused) and its port.
local function listen(opts)
  local listening = assert(net.listen(loopback(), opts))
  return listening, listening:getsockname().port
end

-- A paused core server made directly, with options of core.listen.
local function paused_server(opts)
  opts = opts or {}
  opts.paused = true
  local server = assert(core.listen(loopback(), opts, function(_, sock) sock:close() end))
  return server, server:address().port
end

local function connect(port)
  return assert(coronet.tcp.connect_sock(helper.to(port), { timeout = t(2) }))
end

-- Waits until a client is pending at the server (its handshake done).
local function until_pending(server)
  assert(server:wait_pending(t(2)))
end

local function close_all(...)
  for _, obj in ipairs({ ... }) do
    obj:close()
    assert((obj.close_finished or obj.close_wait)(obj, t(2))) -- a core server has close_wait
  end
end

describe("server:try_accept", function()
  it("gives a plain nil when no client is pending, and never yields", function()
    helper.run(function()
      local listening = listen()
      local co = coroutine.running()
      local n = select("#", listening.core:try_accept())
      assert.are.equal(1, n)
      assert.is_nil((listening.core:try_accept()))
      assert.are.equal(co, coroutine.running())
      listening:close()
    end)
  end)

  it("works in a coroutine that is not a fiber: it never yields", function()
    helper.run(function()
      local listening, port = listen()
      local client = connect(port)
      until_pending(listening.core)
      local co = coroutine.create(function() return listening.core:try_accept() end)
      local ok, sock, address = coroutine.resume(co)
      assert.is_true(ok)
      assert.are.equal("dead", coroutine.status(co))
      assert.is_truthy(sock)
      assert.are.equal("127.0.0.1", address.ip)
      close_all(sock, client, listening)
    end)
  end)

  it("accepts one pending client: a socket that works both ways, with its address", function()
    helper.run(function()
      local listening, port = listen()
      local client = connect(port)
      until_pending(listening.core)
      local sock, address = listening.core:try_accept()
      assert.is_truthy(sock)
      assert.are.equal(client:getsockname().port, address.port)
      assert.are.equal(address, sock:getpeername())
      assert.is_nil((listening.core:try_accept()))
      assert(client:writer():write("ping\n"))
      assert.are.equal("ping", sock:reader():read_line())
      assert(sock:writer():write("pong\n"))
      assert.are.equal("pong", client:reader():read_line())
      close_all(sock, client, listening)
    end)
  end)

  it("accepts several pending clients, one per call, and counts them in the stats", function()
    helper.run(function()
      local listening, port = listen()
      local clients = {}
      for i = 1, 3 do clients[i] = connect(port) end
      local socks = {}
      assert(helper.eventually(function()
        local sock = listening.core:try_accept()
        if sock then socks[#socks + 1] = sock end
        return #socks == 3
      end))
      assert.is_nil((listening.core:try_accept()))
      local stats = listening.core:stats()
      assert.are.equal(3, stats.accepted)
      assert.are.equal(3, stats.connections)
      assert.are.equal(3, listening:num_connections())
      for i = 1, 3 do close_all(socks[i], clients[i]) end
      close_all(listening)
    end)
  end)

  it("applies the server's stream options to the socket", function()
    helper.run(function()
      local server, port = paused_server({ reader_buffer_size = 4096 })
      local client = connect(port)
      until_pending(server)
      local sock = assert(server:try_accept())
      assert.are.equal(4096, sock:reader():capacity())
      close_all(sock, client, server)
    end)
  end)

  it("spends no credit of a paused server and calls no handler", function()
    helper.run(function()
      local handled = 0
      local server = assert(core.listen(loopback(), { paused = true }, function() handled = handled + 1 end))
      local port = server:address().port
      local a, b = connect(port), connect(port)
      until_pending(server)
      local sock = assert(server:try_accept())
      server:add_credit(1) -- the handler gets the other client
      assert(helper.eventually(function() return handled == 1 end))
      assert.is_nil((server:try_accept()))
      coronet.sleep(0.05)
      assert.are.equal(1, handled)
      close_all(sock, a, b, server)
    end)
  end)

  it("takes nothing at max_connections (nil), and takes the client once a connection closed", function()
    helper.run(function()
      local server, port = paused_server({ max_connections = 1 })
      local a, b = connect(port), connect(port)
      until_pending(server)
      local first = assert(server:try_accept())
      coronet.sleep(0.02)
      assert.is_nil((server:try_accept()))
      first:close()
      first:close_finished()
      local second = server:try_accept()
      assert.is_truthy(second)
      close_all(second, a, b, server)
    end)
  end)

  it("in drop mode drops the pending clients and gives nil", function()
    helper.run(function()
      local server, port = paused_server()
      server:set_drop_incoming_connections(true)
      local client = connect(port)
      until_pending(server)
      assert.is_nil((server:try_accept()))
      assert.are.equal(1, server:stats().dropped)
      assert.are.equal(0, server:num_connections())
      local _, _, code = client:reader():read()
      assert.are.equal("closed", code)
      close_all(client, server)
    end)
  end)

  it("fails with closed once the server is closed", function()
    helper.run(function()
      local listening = listen()
      local server = listening.core
      listening:close()
      helper.failed_with("closed", server:try_accept())
      assert(server:close_wait(t(2)))
    end)
  end)
end)

describe("server:wait_pending", function()
  it("wakes when a client connects, accepting nothing", function()
    helper.run(function()
      local listening, port = listen()
      local woke = coronet.ivar()
      coronet.spawn(function() woke:fill(listening.core:wait_pending(t(2))) end)
      coronet.sleep(0.02)
      assert.is_false(woke.deferred:is_determined())
      local client = connect(port)
      helper.await(woke.deferred)
      assert.is_true(woke.deferred:peek())
      assert.are.equal(0, listening.core:stats().accepted)
      local sock = assert(listening.core:try_accept())
      close_all(sock, client, listening)
    end)
  end)

  it("returns on the next turn when a client is already pending, and again while it stays", function()
    helper.run(function()
      local listening, port = listen()
      local client = connect(port)
      until_pending(listening.core)
      assert.is_true(listening.core:wait_pending(t(1)))
      assert.is_true(listening.core:wait_pending(t(1)))
      close_all(client, listening)
    end)
  end)

  it("gives closed when the server closes from another fiber", function()
    helper.run(function()
      local listening = listen()
      local woke = coronet.ivar()
      coronet.spawn(function() woke:fill(listening.core:wait_pending(t(2))) end)
      coronet.sleep(0.02)
      listening:close()
      helper.await(woke.deferred)
      helper.failed_with("closed", woke.deferred:peek())
      helper.failed_with("closed", listening.core:wait_pending())
      assert(listening.core:close_wait(t(2)))
    end)
  end)

  it("times out, and the server still accepts through net.accept afterwards", function()
    helper.run(function()
      local listening, port = listen()
      helper.failed_with("timeout", listening.core:wait_pending(0.02))
      local got = coronet.ivar()
      coronet.spawn(function() got:fill(net.accept(listening)) end)
      local client = connect(port)
      helper.await(got.deferred)
      local sock = assert(got.deferred:peek())
      assert.is_nil((listening.core:try_accept()))
      close_all(sock, client, listening)
    end)
  end)

  it("is cancelled with its fiber, and stops polling", function()
    helper.run(function()
      local listening, port = listen()
      local woke = coronet.ivar()
      local fiber = coronet.spawn(function() woke:fill(listening.core:wait_pending()) end)
      coronet.sleep(0.02)
      fiber:cancel()
      helper.await(woke.deferred)
      helper.failed_with("cancelled", woke.deferred:peek())
      -- a client now wakes nobody and is left pending for the next taker
      local client = connect(port)
      until_pending(listening.core)
      local sock = assert(listening.core:try_accept())
      close_all(sock, client, listening)
    end)
  end)

  it("refuses a stray coroutine.resume and still wakes once", function()
    helper.run(function()
      local listening, port = listen()
      local woke = coronet.ivar()
      local co
      coronet.spawn(function()
        co = coroutine.running()
        woke:fill(listening.core:wait_pending(t(2)))
      end)
      coronet.sleep(0.02)
      local ok, value, msg = coroutine.resume(co)
      assert.is_true(ok)
      assert.is_nil(value)
      assert.matches("stray coroutine.resume", msg)
      assert.is_false(woke.deferred:is_determined())
      local client = connect(port)
      helper.await(woke.deferred)
      assert.is_true(woke.deferred:peek())
      close_all(client, listening)
    end)
  end)

  it("wakes with closed when its listening socket is collected", function()
    helper.run(function()
      local woke = coronet.ivar()
      local server
      do
        local listening = listen()
        server = listening.core
        coronet.spawn(function() woke:fill(server:wait_pending(t(2))) end)
      end
      coronet.sleep(0.02)
      collectgarbage()
      collectgarbage()
      helper.await(woke.deferred)
      helper.failed_with("closed", woke.deferred:peek())
      assert(server:close_wait(t(2)))
    end)
  end)

  it("waits for room at max_connections", function()
    helper.run(function()
      local server, port = paused_server({ max_connections = 1 })
      local a = connect(port)
      until_pending(server)
      local first = assert(server:try_accept())
      local b = connect(port)
      helper.failed_with("timeout", server:wait_pending(0.05))
      first:close()
      assert.is_true(server:wait_pending(t(2)))
      local second = assert(server:try_accept())
      close_all(second, a, b, server)
    end)
  end)

  it("raises on a server that is not paused, and outside a fiber", function()
    helper.run(function()
      local server = assert(core.listen(loopback(), {}, function(_, sock) sock:close() end))
      assert.has_error(function() server:wait_pending() end, "server:wait_pending: the server is not paused: it accepts every client itself")
      local listening = listen()
      local co = coroutine.create(function() return listening.core:wait_pending() end)
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.matches("coronet.spawn", err)
      close_all(server, listening)
    end)
  end)
end)
