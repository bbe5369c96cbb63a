-- net_connect_spec: coronet.net.connect, with_tcp_connect, flows, Happy
-- Eyeballs over explicit addresses, and typed connect failures.
local coronet = require "coronet"
local helper = require "helper"

local t = helper.t
local net = require "coronet.net"

local black_hole, refused_port = helper.black_hole, helper.refused_port

local function ip4(port) return coronet.address("127.0.0.1", port) end

describe("coronet.net connect", function()
  it("is require 'coronet.net' and coronet.net", function()
    assert.are.equal(net, coronet.net)
    assert.is_function(net.connect)
    assert.is_function(net.with_tcp_connect)
  end)

  it("net.connect returns a flow with Eio's read, write and copy_to", function()
    helper.run(function()
      local copied = coronet.ivar()
      local _, port = helper.server(function(_, reader)
        local flow = reader:socket()
        copied:fill(flow:copy_to(flow)) -- an echo
      end)
      local flow = assert(net.connect(ip4(port), { timeout = t(2) }))
      assert.is_true(flow:write("hello", { " ", "world" }))
      assert.is_true(flow:shutdown("send"))
      local got = {}
      while true do
        local data, _, code = flow:read(4)
        if not data then
          assert.are.equal("closed", code)
          break
        end
        assert.is_true(#data <= 4)
        got[#got + 1] = data
      end
      assert.are.equal("hello world", table.concat(got))
      assert.are.equal(11, copied.deferred:wait())
      flow:close()
      flow:close_finished()
    end)
  end)

  it("net.connect with sw: the switch closes the flow at its end", function()
    helper.run(function()
      local _, port = helper.server(function(_, reader) reader:contents() end)
      local flow
      coronet.switch(function(sw)
        flow = assert(net.connect(ip4(port), { sw = sw }))
        assert.is_false(flow:is_closed())
      end)
      assert.is_true(flow:is_closed())
    end)
  end)

  it("a refused connect is nil, err, code with kind, address and the attempts list", function()
    helper.run(function()
      local port, bound = refused_port()
      local flow, err, code = net.connect(ip4(port))
      assert.is_nil(flow)
      assert.are.equal("ECONNREFUSED", code)
      assert.are.equal("refused", err.kind)
      assert.are.equal(tostring(ip4(port)), err.address)
      assert.are.equal(1, #err.attempts)
      assert.are.equal(ip4(port), err.attempts[1].address)
      assert.are.equal("ECONNREFUSED", err.attempts[1].code)
      bound:close()
    end)
  end)

  it("misuse raises", function()
    helper.run(function()
      assert.has_error(function() net.connect("127.0.0.1") end, "bad argument #1 to 'coronet.net.connect' (address value expected, got string)")
      assert.has_error(function() net.connect(ip4(1), { timeout = -1 }) end)
      assert.has_error(function() net.connect(ip4(1), { sw = 1 }) end)
      assert.has_error(function() net.with_tcp_connect("127.0.0.1", 70000, function() end) end,
        "coronet.net.with_tcp_connect: port 70000 is outside 0..65535")
      assert.has_error(function() net.with_tcp_connect("127.0.0.1", 80, "f") end)
      assert.has_error(function() net.with_tcp_connect("127.0.0.1", 80, function() end, { addresses = {} }) end)
      assert.has_error(function()
        net.with_tcp_connect("127.0.0.1", 80, function() end, { happy_eyeballs = { delay = 0 } })
      end)
    end)
  end)

  it("with_tcp_connect runs f with the flow, returns its results and closes the flow", function()
    helper.run(function()
      local _, port = helper.server(helper.echo)
      local kept
      local a, b = net.with_tcp_connect("127.0.0.1", tostring(port), function(flow)
        kept = flow
        assert(flow:write("ping\n"))
        return flow:reader():read_line(), "second"
      end)
      assert.are.same({ "ping", "second" }, { a, b })
      assert.is_true(kept:is_closed())
      local ok, err = pcall(net.with_tcp_connect, "127.0.0.1", port, function(flow)
        kept = flow
        error({ mine = true })
      end)
      assert.is_false(ok)
      assert.is_true(err.mine)
      assert.is_true(kept:is_closed())
    end)
  end)

  it("with_tcp_connect: an unknown host is no_matching_addresses, and f is not called", function()
    helper.run(function()
      local called = false
      local r, err, code = net.with_tcp_connect("no-such-host.invalid", 80, function() called = true end,
        { timeout = t(5) })
      assert.is_nil(r)
      assert.is_false(called)
      assert.are.equal("no_matching_addresses", err.kind)
      assert.is_true(code == "EAI_NONAME" or code == "EAI_AGAIN", code)
    end)
  end)

  it("with_tcp_connect: a service name goes through coronet.net's resolver", function()
    helper.run(function()
      local called = false
      local r, err, code = net.with_tcp_connect("127.0.0.1", "no-such-service-name", function() called = true end)
      assert.is_nil(r)
      assert.is_false(called)
      assert.are.equal("EAI_SERVICE", code, tostring(err))
      -- "discard" is 9/tcp in netbase's /etc/services; nothing listens there
      local _, refused = net.with_tcp_connect("127.0.0.1", "discard", function() called = true end)
      assert.is_false(called)
      assert.are.equal(9, refused.attempts[1].address.port)
    end)
  end)

  it("Happy Eyeballs: a black hole first, a listener second, connects in about the delay", function()
    helper.run(function()
      local hole, release = black_hole()
      local _, port = helper.server(function(_, reader) reader:contents() end)
      local delay, timeout = t(0.1), t(4)
      local start = coronet.now()
      local peer = net.with_tcp_connect("127.0.0.1", 0, function(flow)
        return flow:getpeername().port
      end, { addresses = { ip4(hole), ip4(port) }, timeout = timeout, happy_eyeballs = { delay = delay } })
      local elapsed = coronet.now() - start
      assert.are.equal(port, peer)
      assert.is_true(elapsed >= delay * 0.9, elapsed)
      assert.is_true(elapsed < timeout / 2, elapsed)
      release()
    end)
  end)

  it("without Happy Eyeballs, the second address waits for the first attempt's timeout", function()
    helper.run(function()
      local hole, release = black_hole()
      local _, port = helper.server(function(_, reader) reader:contents() end)
      local timeout = t(0.3)
      local start = coronet.now()
      local peer = net.with_tcp_connect("127.0.0.1", 0, function(flow)
        return flow:getpeername().port
      end, { addresses = { ip4(hole), ip4(port) }, timeout = timeout, happy_eyeballs = false })
      assert.are.equal(port, peer)
      assert.is_true(coronet.now() - start >= timeout * 0.9)
      release()
    end)
  end)

  it("every attempt failing gives the last one's error and address, and each attempt's code", function()
    helper.run(function()
      local hole, release = black_hole()
      local refused, bound = refused_port()
      local r, err, code = net.with_tcp_connect("127.0.0.1", 0, function() end,
        { addresses = { ip4(hole), ip4(refused) }, timeout = t(0.3), happy_eyeballs = { delay = t(0.05) } })
      assert.is_nil(r)
      assert.are.equal("timeout", code) -- the hole's attempt failed last
      assert.are.equal("timeout", err.kind)
      assert.are.equal(tostring(ip4(hole)), err.address)
      assert.are.equal(2, #err.attempts)
      assert.are.same({ ip4(hole), "timeout" }, { err.attempts[1].address, err.attempts[1].code })
      assert.are.same({ ip4(refused), "ECONNREFUSED" }, { err.attempts[2].address, err.attempts[2].code })
      bound:close()
      release()
    end)
  end)

  it("a flow reset by its peer fails with kind connection_reset", function()
    helper.run(function()
      local _, port = helper.server(function(_, reader)
        reader:read() -- once the client's bytes are here, reset
        reader:socket():abort()
      end)
      local flow = assert(net.connect(ip4(port)))
      assert(flow:write("x"))
      local data, err, code = flow:read()
      assert.is_nil(data)
      assert.are.equal("ECONNRESET", code)
      assert.are.equal("connection_reset", err.kind)
      flow:close()
    end)
  end)

  it("tcp.connect takes happy_eyeballs too, off by default", function()
    helper.run(function()
      local hole, release = black_hole()
      local _, port = helper.server(function(_, reader) reader:contents() end)
      local where = coronet.tcp.Where_to_connect.of_address(ip4(hole))
      assert.is_nil(coronet.tcp.connect(where, { timeout = t(0.2) }))
      local sock = coronet.tcp.connect_sock(helper.to(port), { happy_eyeballs = true })
      assert.truthy(sock)
      sock:close()
      assert.has_error(function() coronet.tcp.connect(helper.to(port), { happy_eyeballs = "yes" }) end)
      release()
    end)
  end)
end)
