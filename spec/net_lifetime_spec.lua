-- net_lifetime_spec: coronet.net's lifetime interplays: attempts, lookups,
-- datagram sockets and switches ending, cancelled or collected while
-- something is in flight. Each case ends with nothing left open (helper.run).
local coronet = require "coronet"
local core = require "coronet.core"
local helper = require "helper"
local net = require "coronet.net"

local t = helper.t

local function ip4(port) return coronet.address("127.0.0.1", port) end

-- A listener whose accept queue is full, so a new connect hangs (see
-- net_connect_spec). Returns its port and a function that releases it.
local function black_hole()
  local hold = coronet.ivar()
  local server, port = helper.server(function() hold.deferred:wait() end, { max_connections = 1, backlog = 1 })
  local fillers = {}
  local function release()
    for _, sock in ipairs(fillers) do sock:close() end
    hold:fill()
    server:close()
    for _, sock in ipairs(fillers) do sock:close_finished() end
    server:close_finished()
  end
  for _ = 1, 8 do
    local sock, _, code = coronet.tcp.connect_sock(helper.to(port), { timeout = t(0.2) })
    if not sock then
      assert(code == "timeout", code)
      return port, release
    end
    fillers[#fillers + 1] = sock
  end
  release()
  error("the accept queue never filled: no black hole on this kernel")
end

-- A port that refuses: bound, never listening.
local function refused_port()
  local sock = coronet.tcp.socket()
  assert(sock:bind(coronet.address("127.0.0.1", 0)))
  return sock:getsockname().port, sock
end

describe("coronet.net lifetimes: Happy Eyeballs", function()
  -- Cancels a connect to two black holes and a live listener between its
  -- second attempt's start and its third's.
  local function cancel_in_stagger(how)
    local hole1, release1 = black_hole()
    local hole2, release2 = black_hole()
    local live_server, live = helper.server(function(_, reader) reader:contents() end)
    local connecting = coronet.spawn(function()
      return net.with_tcp_connect("127.0.0.1", 0, function() return "connected" end,
        { addresses = { ip4(hole1), ip4(hole2), ip4(live) }, happy_eyeballs = { delay = t(0.1) } })
    end)
    coronet.sleep(t(0.15)) -- the second attempt has started, the third waits for its delay
    if how == "interrupt" then
      assert.is_true(connecting.core:interrupt(connecting.core:ticket()))
    else
      connecting:cancel()
    end
    local ok, err, code = connecting:join(t(2))
    assert.is_nil(ok)
    assert.are.equal("cancelled", code, tostring(err))
    release1()
    release2()
    coronet.sleep(t(0.2)) -- past the delay the third attempt would have started at
    live_server:close()
    live_server:close_finished()
  end

  it("cancelling the connecting fiber during the stagger delay, two attempts in flight, leaves nothing open", function()
    helper.run(function()
      cancel_in_stagger() -- also makes what the loop creates on first use
      local fds = helper.open_fds()
      cancel_in_stagger()
      assert.are.equal(fds, helper.open_fds())
    end)
  end)

  it("interrupting the connecting fiber's wait during the stagger delay ends the connect with cancelled, leaving nothing open", function()
    helper.run(function()
      cancel_in_stagger("interrupt")
      local fds = helper.open_fds()
      cancel_in_stagger("interrupt")
      assert.are.equal(fds, helper.open_fds())
    end)
  end)
end)

describe("coronet.net lifetimes: Happy Eyeballs, more", function()
  it("six addresses mixing refused, black holes and a live listener connect to the live one and leave nothing open", function()
    helper.run(function()
      local fds = helper.open_fds()
      local r1, s1 = refused_port()
      local r2, s2 = refused_port()
      local hole1, release1 = black_hole()
      local hole2, release2 = black_hole()
      local live_server, live = helper.server(function(_, reader) reader:contents() end)
      local r3, s3 = refused_port()
      local peer = net.with_tcp_connect("127.0.0.1", 0, function(flow) return flow:getpeername().port end,
        { addresses = { ip4(r1), ip4(hole1), ip4(r2), ip4(hole2), ip4(live), ip4(r3) },
          happy_eyeballs = { delay = t(0.05) }, timeout = t(3) })
      assert.are.equal(live, peer)
      release1()
      release2()
      live_server:close()
      live_server:close_finished()
      for _, s in ipairs({ s1, s2, s3 }) do s:close() end
      coronet.sleep(t(0.05))
      assert.are.equal(fds, helper.open_fds())
    end)
  end)

  it("a winner whose peer resets at once gives the handler a reset or an end, never a crash", function()
    helper.run(function()
      local hole, release = black_hole()
      local _, live = helper.server(function(_, reader) reader:socket():abort() end)
      local got = table.pack(net.with_tcp_connect("127.0.0.1", 0, function(flow)
        coronet.sleep(t(0.05))
        local data, err, code = flow:reader():read_line()
        return data, code, (flow:write("late\n"))
      end, { addresses = { ip4(hole), ip4(live) }, happy_eyeballs = { delay = t(0.02) }, timeout = t(3) }))
      assert.is_nil(got[1])
      assert.is_truthy(got[2] == "ECONNRESET" or got[2] == "eof" or got[2] == "closed", tostring(got[2]))
      release()
    end)
  end)
end)

describe("coronet.net lifetimes: switches", function()
  it("a switch run inside another switch's protected section (a release function) is cancelled by its own failure", function()
    helper.run(function()
      local gave, took
      local ok, err = pcall(coronet.switch, function(outer)
        outer:on_release(function()
          local start = coronet.now()
          local inner_ok, inner_err = pcall(coronet.switch, function(inner)
            inner:fork(function() coronet.sleep(t(0.01)) error("inner failure") end)
            gave = table.pack(coronet.sleep(t(2)))
          end)
          took = coronet.now() - start
          assert(not inner_ok and tostring(inner_err):find("inner failure"), tostring(inner_err))
        end)
        error("outer failure")
      end)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("outer failure"))
      assert.are.equal("cancelled", gave[3])
      assert.is_true(took < t(1), took)
    end)
  end)

  it("an outer switch's failure during its release still cannot reach the release functions' waits", function()
    helper.run(function()
      local slept
      pcall(coronet.switch, function(sw)
        sw:on_release(function() slept = coronet.sleep(t(0.05)) end)
        sw:on_release(function() error("a release function raises") end)
        error("first")
      end)
      assert.is_true(slept)
    end)
  end)
end)

describe("coronet.net lifetimes: datagrams", function()
  local function udp() return assert(net.datagram_socket(ip4(0))) end

  it("a fiber waiting in recv on a socket nobody else references survives collections and gets its datagram", function()
    helper.run(function()
      local port = coronet.ivar()
      local waiting = coronet.spawn(function()
        local sock = udp() -- only this fiber's stack holds it
        port:fill(sock:getsockname().port)
        local data = sock:recv(64, { timeout = t(3) })
        sock:close()
        return data
      end)
      local p = port.deferred:wait()
      coronet.sleep(0.01)
      collectgarbage()
      collectgarbage()
      local sender = udp()
      assert(sender:send(ip4(p), "still here"))
      assert.are.equal("still here", waiting:join(t(3)))
      sender:close()
    end)
  end)

  it("many fibers receiving on many sockets, half of them dropped unclosed, lose nothing and leak nothing", function()
    helper.run(function()
      local fds = helper.open_fds()
      local socks, fibers = {}, {}
      for i = 1, 16 do
        socks[i] = udp()
        fibers[i] = coronet.spawn(function(sock) return sock:recv(64, { timeout = t(3) }) end, socks[i])
      end
      coronet.sleep(0.01)
      local sender = udp()
      for i = 1, 16 do assert(sender:send(socks[i]:getsockname(), "to " .. i)) end
      for i = 1, 16 do assert.are.equal("to " .. i, fibers[i]:join(t(3))) end
      for i = 1, 16, 2 do socks[i]:close() end
      socks, fibers = nil, nil
      sender:close()
      collectgarbage()
      collectgarbage()
      coronet.sleep(0.01)
      assert.are.equal(fds, helper.open_fds())
    end)
  end)
end)
