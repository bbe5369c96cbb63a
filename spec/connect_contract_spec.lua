-- spec/connect_contract_spec.lua: what connections promise at the edges: odd
-- host names, sockets given by the caller, per-attempt timeouts, writes
-- before connect, and what a peer sees when a connection is aborted.
local helper = require "helper"
local coronet = require "coronet"
local core = require "coronet.core"

local tcp = coronet.tcp

describe("host names the resolver cannot take", function()
  it("a host with an embedded NUL fails as EAI_NONAME, never connecting to the part before the NUL", function()
    helper.run(function()
      local accepted = 0
      local server, port = helper.server(function() accepted = accepted + 1 end)
      local host = "127.0.0.1\0.evil.example"
      local sock, err, code = core.connect { host = host, port = port, timeout = 2 }
      assert.is_nil(sock)
      assert.are.equal("EAI_NONAME", code)
      assert.are.equal(host, err.address)
      coronet.sleep(0.05)
      assert.are.equal(0, accepted)
      helper.await(server:close())
    end)
  end)

  it("a host of 256 bytes or more fails as EAI_NONAME, like one of 255, without raising", function()
    helper.run(function()
      for _, len in ipairs { 255, 256, 1000 } do
        local host = string.rep("a", len - #".invalid") .. ".invalid"
        local ok, sock, err, code = pcall(tcp.connect, tcp.Where_to_connect.of_host_and_port(host, 80))
        assert.is_true(ok, sock)
        assert.is_nil(sock)
        assert.are.equal("EAI_NONAME", code, len)
        assert.are.equal(host, err.address)
      end
    end)
  end)
end)

describe("connect error values under garbage-collection stress", function()
  -- A cancelled fiber's connect fails at once, through the same path as a
  -- DNS failure (the message names host:port), without asking a resolver.
  it("a connect failing before any address was tried builds its message from memory the collector keeps", function()
    helper.run(function()
      local done = coronet.ivar()
      local fiber = coronet.spawn(function()
        coronet.sleep(10)
        local old = collectgarbage("generational", 1, 100)
        for i = 1, 900 do -- below the 1000 cancelled waits after which a fiber is unwound
          local junk = {}
          for j = 1, i % 97 do junk[j] = tostring(j) .. "x" end
          local sock, err, code = core.connect { host = "no-such-host-coronet.invalid", port = 80 }
          assert(sock == nil and code == "cancelled", code)
          assert(tostring(err):find("connect to no-such-host-coronet.invalid:80", 1, true), tostring(err))
        end
        collectgarbage(old)
        done:fill(true)
      end)
      coronet.sleep(0.01)
      fiber:cancel()
      helper.await(done.deferred)
    end)
  end)
end)

-- The names with several addresses, the first of another family or never
-- answering, are made by a fake resolver in spec/c/test_connect.c; these
-- specs hold the same promises through the Lua API with what loopback gives.
describe("a socket given by the caller", function()
  it("an inet socket connects to localhost, at the first address of its family", function()
    helper.run(function()
      local server = assert(tcp.Server.create(tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0)),
        function(_, r, w) w:write("hi\n") r:contents() end))
      local sock = tcp.socket("inet")
      local same, r = tcp.connect(tcp.Where_to_connect.of_host_and_port("localhost", server:listening_on()),
        { socket = sock })
      assert.are.equal(sock, same, r)
      assert.are.equal("hi", r:read_line { timeout = helper.t(2) })
      sock:close()
      assert.is_true(sock:close_finished(helper.t(2)))
      helper.await(server:close())
    end)
  end)

  it("a refused attempt closes the socket and leaves no descriptor", function()
    helper.run(function()
      local port = helper.closed_port()
      local fds = helper.open_fds()
      local sock = tcp.socket("inet")
      local same, err, code = tcp.connect(helper.to(port), { socket = sock })
      assert.is_nil(same)
      assert.are.equal("ECONNREFUSED", code, tostring(err))
      assert.is_true(sock:close_finished(helper.t(2)))
      assert.are.equal(fds, helper.open_fds())
    end)
  end)
end)

describe("attempt_timeout", function()
  -- helper.black_hole: a connect to it neither succeeds nor fails until a timeout ends it.
  local black_hole = helper.black_hole

  it("bounds an attempt at an address that never answers, within a longer overall timeout", function()
    helper.run(function()
      local port, release = black_hole()
      local started = coronet.now()
      local sock, err, code = tcp.connect(helper.to(port), { timeout = helper.t(5), attempt_timeout = 0.1 })
      local took = coronet.now() - started
      assert.is_nil(sock)
      assert.are.equal("timeout", code, tostring(err))
      assert.is_true(took >= 0.09 and took < helper.t(2), took)
      release()
    end)
  end)
end)

describe("writing before connect", function()
  it("is refused with ENOTCONN and accepts nothing; after connect the writer works", function()
    helper.run(function()
      local server, port, received = helper.recording_server()
      local sock = tcp.socket()
      local w = sock:writer()
      local ok, err, code = w:write("early\n")
      assert.is_nil(ok)
      assert.are.equal("ENOTCONN", code, tostring(err))
      assert.are.equal(0, w:pending())
      local same = assert(tcp.connect_sock(helper.to(port), { socket = sock }))
      assert.are.equal(sock, same)
      assert.is_true(w:write("late\n"))
      w:close()
      helper.await(received)
      assert.are.equal("late\n", (received:peek()))
      sock:close()
      assert.is_true(sock:close_finished(helper.t(2)))
      helper.await(server:close())
    end)
  end)
end)

describe("abort", function()
  -- A server that writes `size` bytes to each client, then aborts it once
  -- `go` is filled (while most of the bytes are still queued).
  local function cutting_server(size, go, how)
    return helper.server(function(_, r, w)
      assert(w:write(string.rep("x", size))) -- returns at once: the mark is above size
      go.deferred:wait()
      how(w:socket())
      r:contents()
    end, { writer_buffer_size = 2 * size })
  end

  -- Reads until the end; returns the bytes read and the end code.
  local function read_to_end(r)
    local total = 0
    while true do
      local data, _, code = r:read(nil, { timeout = helper.t(5) })
      if not data then return total, code end
      total = total + #data
    end
  end

  it("sends a reset: a peer reading 4 MiB being cut sees ECONNRESET, not a clean end", function()
    helper.run(function()
      local go = coronet.ivar()
      local size = 4 * 1024 * 1024
      local server, port = cutting_server(size, go, function(sock) sock:abort() end)
      local sock, r = helper.connect(port)
      assert.is_string(r:read(nil, { timeout = helper.t(2) })) -- the first bytes are there
      go:fill()
      coronet.sleep(helper.t(0.05))
      local total, code = read_to_end(r)
      assert.is_true(total < size, total)
      assert.are.equal("ECONNRESET", code)
      sock:close()
      helper.await(server:close())
    end)
  end)

  it("a connection closed for a stalled writer resets too", function()
    helper.run(function()
      local go = coronet.ivar()
      local size = 4 * 1024 * 1024
      local _, port = helper.server(function(_, r, w)
        w:socket():configure { buffer_age_limit = 0.05 }
        w:write(string.rep("x", size))
        go:fill()
        r:contents()
      end)
      local sock, r = helper.connect(port, { reader_buffer_size = 16 })
      helper.await(go.deferred)
      coronet.sleep(helper.t(0.3)) -- nothing read: the server's writer stalls and closes
      local total, code = read_to_end(r)
      assert.is_true(total < size, total)
      assert.are.equal("ECONNRESET", code)
      sock:close()
    end)
  end)

  it("a server closing existing connections resets one with unflushed bytes, and ends an idle one cleanly", function()
    helper.run(function()
      local size = 4 * 1024 * 1024
      local queued = coronet.ivar()
      local server, port = helper.server(function(_, r, w)
        local what = r:read_line()
        if what == "busy" then
          assert(w:write(string.rep("x", size)))
          queued:fill()
        end
        r:contents()
      end, { writer_buffer_size = 2 * size })
      local busy, rb, wb = helper.connect(port)
      local idle, ri, wi = helper.connect(port)
      assert(wb:write("busy\n"))
      assert(wi:write("idle\n"))
      helper.await(queued.deferred)
      assert.is_true(helper.eventually(function() return server:num_connections() == 2 end))
      helper.await(server:close { close_existing_connections = true })
      local total, code = read_to_end(rb)
      assert.is_true(total < size, total)
      assert.are.equal("ECONNRESET", code)
      local data, _, idle_code = ri:read(nil, { timeout = helper.t(2) })
      assert.is_nil(data)
      assert.are.equal("closed", idle_code)
      busy:close()
      idle:close()
    end)
  end)

  it("a graceful close still ends with a clean end of stream", function()
    helper.run(function()
      local go = coronet.ivar()
      local size = 256 * 1024
      local server, port = cutting_server(size, go, function(sock) sock:close() end)
      local sock, r = helper.connect(port)
      go:fill()
      local total, code = read_to_end(r)
      assert.are.equal(size, total)
      assert.are.equal("closed", code)
      sock:close()
      helper.await(server:close())
    end)
  end)
end)
