-- net_lifetime_spec: coronet.net's lifetime interplays: attempts, lookups,
-- datagram sockets and switches ending, cancelled or collected while
-- something is in flight. Each case ends with nothing left open (helper.run).
local coronet = require "coronet"
local core = require "coronet.core"
local helper = require "helper"
local net = require "coronet.net"

local t = helper.t

local function ip4(port) return coronet.address("127.0.0.1", port) end

local black_hole, refused_port = helper.black_hole, helper.refused_port

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

  it("a switch inside each run_server handler, and a handler forking on a switch that has finished, are errors of that handler only", function()
    helper.run(function()
      local listening = assert(net.listen(ip4(0)))
      local port = listening:getsockname().port
      local finished
      coronet.switch(function(sw) finished = sw end)
      local seen, stop = {}, coronet.ivar()
      local server = coronet.spawn(net.run_server, listening, function(flow)
        local line = flow:reader():read_line()
        if line == "late fork" then return finished:fork(function() end) end
        return coronet.switch(function(sw)
          local echo = sw:fork(function() return line end)
          sw:attach(flow)
          flow:write(echo:join(), "\n")
        end)
      end, { stop = stop.deferred, on_error = function(err) seen[#seen + 1] = tostring(err) end })
      for _, line in ipairs({ "one", "late fork", "two" }) do
        local sock, reader, writer = helper.connect(port)
        writer:write(line, "\n")
        local got = reader:read_line()
        if line == "late fork" then assert.is_nil(got) else assert.are.equal(line, got) end
        sock:close()
      end
      stop:fill(true)
      server:join(t(2))
      assert.are.equal(1, #seen)
      assert.is_truthy(seen[1]:find("fork on a switch that has finished"), seen[1])
      listening:close()
      listening:close_finished()
    end)
  end)

  it("resources attached then closed by their owner and dropped are collected while the switch lives; it still ends", function()
    helper.run(function()
      local fds = helper.open_fds()
      local collected = setmetatable({}, { __mode = "k" })
      local function attach_and_close(sw)
        for _ = 1, 200 do
          local sock = assert(net.datagram_socket(ip4(0), { sw = sw }))
          collected[sock] = true
          sock:close()
        end
      end
      coronet.switch(function(sw)
        attach_and_close(sw)
        collectgarbage()
        collectgarbage()
        coronet.sleep(0.01)
      end)
      collectgarbage()
      collectgarbage() -- a finalized key leaves a weak table one cycle after its __gc
      assert.is_nil(next(collected))
      assert.are.equal(fds, helper.open_fds())
    end)
  end)

  it("a cancel from outside during a switch's protected section waits for the release, then stays: run's teardown ends", function()
    local slept, after
    local ok = coronet.run(function()
      local f = coronet.spawn(function()
        pcall(coronet.switch, function(sw)
          sw:on_release(function() slept = coronet.sleep(t(0.1)) end)
          error("failing")
        end)
        after = table.pack(coronet.sleep(t(5)))
      end)
      coronet.sleep(t(0.05))
      f:cancel()
      return true -- the teardown cancels f again and waits for it
    end)
    assert.is_true(ok)
    assert.is_true(slept)
    assert.are.equal("cancelled", after[3])
    helper.assert_clean()
  end)

  it("64 switches nest in one fiber, the deepest one's failure cancelling the waits inside it; the 65th raises", function()
    helper.run(function()
      local function nest(n, max)
        if n > max then return coronet.sleep(t(5)) end
        return coronet.switch(function(sw)
          if n == max then sw:fork(function() error("deepest") end) end
          return nest(n + 1, max)
        end)
      end
      local start = coronet.now()
      local ok, err = pcall(nest, 1, 64)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("deepest"))
      assert.is_true(coronet.now() - start < t(1))
      ok, err = pcall(nest, 1, 65)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("more than 64 switches"), tostring(err))
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

-- Runs a Lua chunk in a child lua5.4 (under `timeout`) from the repository's
-- root with this module path; returns its output and exit status. The chunk
-- finds the worker fixture's handlers as "net_lifetime_fixture:<name>".
local function child(source, limit) return helper.child(source, { limit = limit }) end

describe("coronet.net lifetimes: run_server with workers", function()
  it("a host state that drives the loop itself and closes with two workers serving ends (the workers are aborted and joined)", function()
    local out, status = child([[
      local coronet = require "coronet"
      local net = require "coronet.net"
      local listening = assert(net.listen(coronet.address("127.0.0.1", 0), { reuse_port = true }))
      coronet.spawn(net.run_server, listening, "net_lifetime_fixture:hold", { workers = 2 })
      local deadline = coronet.now() + 0.5
      while coronet.now() < deadline do coronet.step(0.05) end
      print("closing")
      os.exit(0, true) -- lua_close with the workers running
    ]], 10)
    assert.is_truthy(out:find("closing"), out)
    assert.are.equal(0, status, out)
  end)

  it("coronet.run ends when its main fiber returns, raises or is cancelled while two workers serve open connections", function()
    local out, status = child([[
      local coronet = require "coronet"
      local core = require "coronet.core"
      local net = require "coronet.net"
      for _, how in ipairs({ "return", "raise", "cancel" }) do
        local ok, err = pcall(coronet.run, function()
          local listening = assert(net.listen(coronet.address("127.0.0.1", 0), { reuse_port = true }))
          local port = listening:getsockname().port
          coronet.spawn(net.run_server, listening, "net_lifetime_fixture:hold", { workers = 2 })
          coronet.sleep(0.2)
          local to = coronet.tcp.Where_to_connect.of_host_and_port("127.0.0.1", port)
          for _ = 1, 8 do
            local _, _, writer = assert(coronet.tcp.connect(to))
            writer:write("open\n")
          end
          coronet.sleep(0.1)
          if how == "raise" then error("main raised") end
          if how == "cancel" then core.current():cancel() coronet.sleep(5) end
        end)
        print(how, ok or tostring(err):match("main raised"), core.fiber_count(), core.live())
      end
      os.exit(0, true)
    ]], 20)
    assert.are.equal(0, status, out)
    assert.is_truthy(out:find("return\ttrue\t0\t0"), out)
    assert.is_truthy(out:find("raise\tmain raised\t0\t0"), out)
    assert.is_truthy(out:find("cancel\ttrue\t0\t0"), out)
  end)

  it("a handler module that calls coronet.run while loading, or a handler that calls it, gets a clear error", function()
    local out, status = child([[
      local coronet = require "coronet"
      local core = require "coronet.core"
      local net = require "coronet.net"
      local ok, err = pcall(coronet.run, function()
        local listening = assert(net.listen(coronet.address("127.0.0.1", 0), { reuse_port = true }))
        return net.run_server(listening, "net_lifetime_runs_at_load:handler", { workers = 2 })
      end)
      print("load", ok, (tostring(err):match("failed to load.-loop is already running")) ~= nil, core.fiber_count(), core.live())
      local results = table.pack(coronet.run(function()
        local listening = assert(net.listen(coronet.address("127.0.0.1", 0), { reuse_port = true }))
        local port = listening:getsockname().port
        local seen, stop = {}, coronet.ivar()
        local server = coronet.spawn(net.run_server, listening, "net_lifetime_fixture:runs",
          { workers = 2, stop = stop.deferred, on_error = function(e) seen[#seen + 1] = tostring(e) end })
        coronet.sleep(0.3)
        local to = coronet.tcp.Where_to_connect.of_host_and_port("127.0.0.1", port)
        for _ = 1, 6 do assert(coronet.tcp.connect(to)):close() end
        coronet.sleep(0.2)
        stop:fill(true)
        local _, stats = server:join(5)
        local clear = 0
        for _, e in ipairs(seen) do if e:find("loop is already running") then clear = clear + 1 end end
        return clear, stats.handler_errors
      end))
      print("handler", results[1], results[2], core.fiber_count(), core.live())
    ]], 20)
    assert.are.equal(0, status, out)
    assert.is_truthy(out:find("load\tfalse\ttrue\t0\t0"), out)
    assert.is_truthy(out:find("handler\t6\t6\t0\t0"), out)
  end)

  it("eight workers on this machine's cores serve two hundred clients and stop", function()
    local out, status = child([[
      local coronet = require "coronet"
      local core = require "coronet.core"
      local net = require "coronet.net"
      local results = table.pack(coronet.run(function()
        local listening = assert(net.listen(coronet.address("127.0.0.1", 0), { reuse_port = true }))
        local port = listening:getsockname().port
        local stop = coronet.ivar()
        local server = coronet.spawn(net.run_server, listening, "net_lifetime_fixture:echo", { workers = 8, stop = stop.deferred })
        local to = coronet.tcp.Where_to_connect.of_host_and_port("127.0.0.1", port)
        local clients = {}
        for i = 1, 200 do
          clients[i] = coronet.spawn(function()
            local sock, reader, writer = assert(coronet.tcp.connect(to))
            writer:write("c", i, "\n")
            local line = reader:read_line()
            sock:close()
            return line == "c" .. i
          end)
        end
        local echoed = 0
        for i = 1, 200 do if clients[i]:join(10) then echoed = echoed + 1 end end
        stop:fill(true)
        local _, stats = server:join(10)
        return echoed, stats.accepted, stats.workers
      end))
      print("served", results[1], results[2], results[3], core.fiber_count(), core.live())
    ]], 30)
    assert.are.equal(0, status, out)
    assert.is_truthy(out:find("served\t200\t200\t8\t0\t0"), out)
  end)
end)

describe("coronet.net lifetimes: name lookups", function()
  it("lookups abandoned by timeout or cancel, then the run ends and the state closes while the threadpool works, exit cleanly", function()
    local out, status = child([[
      local coronet = require "coronet"
      local net = require "coronet.net"
      coronet.run(function()
        for i = 1, 8 do
          local f = coronet.spawn(net.getaddrinfo, "abandoned-" .. i .. ".invalid", { timeout = 0.001 })
          if i % 2 == 0 then f:cancel() end
        end
        for i = 1, 8 do coronet.spawn(net.getnameinfo, coronet.address("192.0.2." .. i, 80), { timeout = 0.001 }) end
        coronet.sleep(0.002)
      end)
      print("closing")
      os.exit(0, true)
    ]], 20)
    assert.are.equal(0, status, out)
    assert.is_truthy(out:find("closing"), out)
  end)

  it("getnameinfo of unspecified, broadcast, v4-mapped and link-local addresses gives a name or an error value", function()
    helper.run(function()
      local odd = { coronet.address("0.0.0.0", 0), coronet.address("::", 65535), coronet.address("::ffff:127.0.0.1", 1),
                    coronet.address("255.255.255.255", 9), coronet.address("fe80::1", 22) }
      for _, addr in ipairs(odd) do
        local host, err, code = net.getnameinfo(addr, { timeout = t(2) })
        assert.is_truthy(type(host) == "string" or (host == nil and err ~= nil and type(code) == "string"),
          tostring(addr) .. ": " .. tostring(err))
      end
    end)
  end)
end)
