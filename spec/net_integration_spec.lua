-- spec/net_integration_spec.lua: coronet.net with the real coronet.switch,
-- as a user writes it: every resource made with {sw = sw} is closed, its
-- close finished, when the switch returns; errors and cancellation cross
-- the switch as the issue promises.
local coronet = require "coronet"
local core = require "coronet.core"
local net = require "coronet.net"
local helper = require "helper"

local t = helper.t

local function loopback() return coronet.address("127.0.0.1", 0) end

local function listen(opts)
  local listening = assert(net.listen(loopback(), opts))
  return listening, listening:getsockname().port
end

local function to(port) return coronet.address("127.0.0.1", port) end

-- A client fiber: connects, sends `line` when given, reads until EOF;
-- returns what it read. `state.open` is true while its socket is open.
local function client(port, line, state)
  state = state or {}
  return coronet.spawn(function()
    local flow = assert(net.connect(to(port)))
    state.open = true
    if line then flow:write(line, "\n") end
    local data = flow:reader():contents()
    flow:close()
    flow:close_finished()
    state.open = false
    return data
  end)
end

-- Echoes one read, then holds the connection open.
local function echo_and_hold(flow)
  flow:write(flow:read())
  flow:writer():flush()
  coronet.sleep(t(60))
end

local function echo_once(flow)
  flow:write(flow:read())
end

describe("net with coronet.switch", function()
  it("closes everything made with {sw = sw}, its close finished, when the switch returns", function()
    helper.run(function()
      local before = core.live()
      local made, c
      local c_state = {}
      coronet.switch(function(sw)
        local listening, port = listen({ sw = sw })
        local flow = assert(net.connect(to(port), { sw = sw }))
        local accepted = assert(net.accept(listening, { sw = sw }))
        local udp = assert(net.datagram_socket(loopback(), { sw = sw }))
        c = client(port, "hello", c_state)
        assert.is_true(net.accept_fork(listening, echo_once, { sw = sw }))
        made = { listening, flow, accepted, udp }
      end)
      for _, resource in ipairs(made) do assert.is_true(resource:is_closed()) end
      -- the client's own socket is the only one that may still be open
      assert.are.equal(before + (c_state.open and 1 or 0), core.live())
      assert.are.equal("hello\n", c:join(t(2)))
    end)
  end)

  it("fails the switch on an accept_fork handler error without on_error: the first is raised, later ones in suppressed", function()
    helper.run(function()
      local before = core.live()
      local gate = coronet.ivar()
      local clients = {}
      local ok, err = pcall(coronet.switch, function(sw)
        local listening, port = listen({ sw = sw })
        clients[1] = client(port)
        net.accept_fork(listening, function() coronet.sleep(t(60)) error({ n = 2 }) end, { sw = sw })
        clients[2] = client(port)
        net.accept_fork(listening, function() gate.deferred:wait() error({ n = 1 }) end, { sw = sw })
        sw:fork(function() coronet.sleep(t(0.05)) gate:fill() end)
        coronet.sleep(t(60))
      end)
      assert.is_false(ok)
      assert.are.equal(1, err.n)
      assert.are.equal("127.0.0.1", err.address.ip)
      assert.are.equal(1, #err.suppressed)
      assert.are.equal(2, err.suppressed[1].n)
      for _, c in ipairs(clients) do c:join(t(2)) end
      assert.are.equal(before, core.live())
    end)
  end)

  it("closes everything at once when the fiber running the switch is cancelled while run_server runs", function()
    helper.run(function()
      local before = core.live()
      local listening_seen = coronet.ivar()
      local server = coronet.spawn(function()
        return coronet.switch(function(sw)
          local listening, port = listen({ sw = sw })
          listening_seen:fill(listening, port)
          return net.run_server(listening, echo_and_hold)
        end)
      end)
      local listening, port = listening_seen.deferred:wait()
      local clients = { client(port, "a"), client(port, "b") }
      local expected = { "a\n", "b\n" }
      assert.is_true(helper.eventually(function() return listening:num_connections() == 2 end))
      local started = coronet.now()
      server:cancel()
      local none, _, code = server:join(t(2))
      assert.is_nil(none)
      assert.are.equal("cancelled", code)
      assert.is_true(listening:is_closed())
      for i, c in ipairs(clients) do assert.are.equal(expected[i], c:join(t(2))) end
      assert.is_true(coronet.now() - started < t(1))
      assert.are.equal(before, core.live())
    end)
  end)

  it("nests: an inner switch closes its own resources and leaves the outer's open", function()
    helper.run(function()
      local before = core.live()
      coronet.switch(function(outer)
        local listening, port = listen({ sw = outer })
        local inner_flow
        local ok, err = pcall(coronet.switch, function(inner)
          inner_flow = assert(net.connect(to(port), { sw = inner }))
          assert(net.accept(listening, { sw = inner }))
          error("inner failed")
        end)
        assert.is_false(ok)
        assert.matches("inner failed", err)
        assert.is_true(inner_flow:is_closed())
        assert.is_false(listening:is_closed())
        local c = client(port, "still")
        net.accept_fork(listening, echo_once, { sw = outer })
        assert.are.equal("still\n", c:join(t(2)))
      end)
      assert.are.equal(before, core.live())
    end)
  end)

  it("lets go of a resource its owner closed: no double close, nothing kept until the switch ends", function()
    helper.run(function()
      local before = core.live()
      local seen = setmetatable({}, { __mode = "k" })
      local counted = { closes = 0 }
      function counted:close() self.closes = self.closes + 1 end
      function counted:is_closed() return self.closes > 0 end
      coronet.switch(function(sw)
        sw:attach(counted)
        counted:close()
        local listening, port = listen({ sw = sw })
        for _ = 1, 100 do
          local flow = assert(net.connect(to(port), { sw = sw }))
          local accepted = assert(net.accept(listening, { sw = sw }))
          seen[flow], seen[accepted] = true, true
          flow:close()
          accepted:close()
          assert.is_true(accepted:close_finished(t(2)))
        end
        local udp = assert(net.datagram_socket(loopback(), { sw = sw }))
        udp:close()
        listening:close()
        assert.is_true(listening:close_finished(t(2)))
        collectgarbage()
        collectgarbage()
        -- the switch lets them go in sweeps: fewer than its first sweep's 64 stay reachable
        local alive = 0
        for _ in pairs(seen) do alive = alive + 1 end
        assert.is_true(alive < 64, alive .. " of 200 closed flows kept alive by the switch")
      end)
      assert.are.equal(1, counted.closes)
      assert.are.equal(before, core.live())
    end)
  end)

  it("connects and serves over a unix socket path the same way, and unlinks it at the switch's end", function()
    helper.run(function()
      local path = helper.unix_path("net")
      local got
      coronet.switch(function(sw)
        local listening = assert(net.listen(coronet.unix_address(path), { sw = sw }))
        local flow = assert(net.connect(coronet.unix_address(path), { sw = sw }))
        assert.is_true(net.accept_fork(listening, echo_once, { sw = sw }))
        flow:write("over unix\n")
        got = flow:read()
      end)
      assert.are.equal("over unix\n", got)
      assert.is_nil(io.open(path))
    end)
  end)

  it("returns run_server's stop value inside a switch once the open connection finished", function()
    helper.run(function()
      local before = core.live()
      local stop = coronet.ivar()
      local value, stats, data
      coronet.switch(function(sw)
        local listening, port = listen({ sw = sw })
        local server = sw:fork(function()
          return net.run_server(listening, echo_once, { stop = stop.deferred })
        end)
        local c = coronet.spawn(function()
          local flow = assert(net.connect(to(port)))
          assert(helper.eventually(function() return stop.deferred:is_determined() end))
          coronet.sleep(t(0.05))
          flow:write("late\n")
          local got = flow:reader():contents()
          flow:close()
          return got
        end)
        assert.is_true(helper.eventually(function() return listening:num_connections() == 1 end))
        stop:fill("bye")
        value, stats = server:join(t(2))
        data = c:join(t(2))
      end)
      assert.are.equal("bye", value)
      assert.are.equal(1, stats.connections)
      assert.are.equal("late\n", data)
      assert.are.equal(before, core.live())
    end)
  end)
end)
