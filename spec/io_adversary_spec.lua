-- spec/io_adversary_spec.lua: the reader, writer, socket and server used as
-- an adversary would: closes from other fibers and handlers during waits,
-- `<close>` and __gc during waits, trickling, resetting and silent peers,
-- reads after EOF, mixed reads over partial data, error values that fight
-- back, and server:close() from inside a handler.
local coronet = require "coronet"
local helper = require "helper"

local t = helper.t

local failed_with = helper.failed_with

-- A connected pair whose server handler waits until `release()`, then runs
-- `after(r, w)` if given. Returns client socket, reader, writer, release.
local function held_pair(after, client_opts, server_opts)
  local gate = coronet.ivar()
  local sock, r, w = helper.pair(function(sr, sw)
    gate.deferred:wait()
    if after then after(sr, sw) end
  end, client_opts, server_opts)
  return sock, r, w, function() gate:fill() end
end

-- A fiber waiting in `call`; asserts it is still waiting after a moment.
local function waiting(call)
  local f = coronet.spawn(call)
  coronet.sleep(t(0.05))
  assert.is_false(f:is_done())
  return f
end

local BIG = 4 * 1024 * 1024 -- more than loopback's socket buffers take

local fill = helper.fill_writer

describe("closing from another fiber during a wait", function()
  local reads = {
    { "read_line", function(r) return r:read_line(t(5)) end },
    { "really_read", function(r) return r:really_read(10, t(5)) end },
    { "read_until", function(r) return r:read_until("|", t(5)) end },
    { "peek", function(r) return r:peek(10, t(5)) end },
    { "contents", function(r) return r:contents(t(5)) end },
    { "read", function(r) return r:read(nil, t(5)) end },
  }
  for _, read in ipairs(reads) do
    local name, call = read[1], read[2]
    for _, closer in ipairs({ "socket:close", "socket:abort", "reader:close" }) do
      it(name .. " woken by " .. closer .. " returns nil, err, \"closed\"; the next read answers closed (or raises after reader:close)", function()
        helper.run(function()
          local sock, r, _, release = held_pair(nil)
          local f = waiting(function() return call(r) end)
          if closer == "socket:close" then
            sock:close()
          elseif closer == "socket:abort" then
            sock:abort()
          else
            r:close()
          end
          failed_with("closed", f:join(t(2)))
          if closer == "reader:close" then
            assert.has_error(function() call(r) end, "reader is closed") -- use after close is misuse
          else
            failed_with("closed", call(r)) -- and again, at once
          end
          release()
          sock:close()
          assert.is_true(sock:close_finished(t(2)))
        end)
      end)
    end
  end

  it("a read woken by socket:close after some bytes arrived: closed, and every later read answers closed", function()
    helper.run(function()
      local sent = coronet.ivar()
      local sock2, r2 = helper.pair(function(_, w)
        w:write("part")
        sent.deferred:wait(t(5))
      end)
      assert.equal("part", r2:peek(4, t(2)))
      local f = waiting(function() return r2:read_line(t(5)) end)
      sock2:close()
      failed_with("closed", f:join(t(2)))
      failed_with("closed", r2:read_line())
      failed_with("closed", r2:read(1))
      assert.is_true(r2:is_closed())
      sent:fill()
    end)
  end)

  it("closing the writer while a fiber reads leaves the read waiting, and it completes", function()
    helper.run(function()
      local go = coronet.ivar()
      local sock, r, w = helper.pair(function(sr, sw)
        go.deferred:wait()
        sw:write("late line\n")
        sr:contents()
      end)
      local f = waiting(function() return r:read_line(t(5)) end)
      w:close()
      coronet.sleep(t(0.02))
      assert.is_false(f:is_done())
      go:fill()
      assert.equal("late line", f:join(t(2)))
      sock:close()
    end)
  end)

  for _, closer in ipairs({ "socket:close", "socket:abort", "writer:close" }) do
    it("write blocked above the mark woken by " .. closer .. " returns closed, taking nothing", function()
      helper.run(function()
        local sock, _, w, release = held_pair(function(sr) sr:contents() end, nil, { reader_buffer_size = 1024 })
        local f = coronet.spawn(function()
          fill(sock, w)
          return w:write(string.rep("X", 1000))
        end)
        coronet.sleep(t(0.1))
        assert.is_false(f:is_done())
        if closer == "socket:close" then
          sock:close()
        elseif closer == "socket:abort" then
          sock:abort()
        else
          w:close()
        end
        failed_with("closed", f:join(t(2)))
        sock:abort()
        release()
        assert.is_true(sock:close_finished(t(2)))
      end, 20)
    end)

    it("flush woken by " .. closer .. " returns nil, err, code, never true", function()
      helper.run(function()
        local sock, _, w, release = held_pair(function(sr) sr:contents() end, nil, { reader_buffer_size = 1024 })
        fill(sock, w)
        local f = waiting(function() return w:flush(t(5)) end)
        if closer == "socket:close" then
          sock:close()
        elseif closer == "socket:abort" then
          sock:abort()
        else
          w:close()
        end
        failed_with("closed", f:join(t(2)))
        sock:abort()
        release()
        assert.is_true(sock:close_finished(t(2)))
      end, 20)
    end)
  end

  it("close_finished waiters (several fibers) all return true when another fiber aborts", function()
    helper.run(function()
      local sock, _, w, release = held_pair(function(sr) sr:contents() end, nil, { reader_buffer_size = 1024 })
      fill(sock, w)
      sock:close() -- the final flush cannot end: the peer does not read
      local a = waiting(function() return sock:close_finished(t(5)) end)
      local b = waiting(function() return sock:close_finished(t(5)) end)
      sock:abort()
      assert.is_true(a:join(t(2)))
      assert.is_true(b:join(t(2)))
      release()
    end, 20)
  end)

  it("a handler closing another handler's connection wakes that handler's read with closed; the server keeps serving", function()
    helper.run(function()
      local socks, results = {}, {}
      local both = coronet.ivar()
      local server, port = helper.server(function(_, r, w)
        local id = r:read_line(t(5))
        socks[id] = r:socket()
        if id == "victim" then
          results.victim = table.pack(r:read_line(t(5)))
          return
        end
        both.deferred:wait(t(5))
        coronet.sleep(t(0.05)) -- the victim waits in read_line now
        socks.victim:close()
        w:write("done\n")
      end)
      local s1, _, w1 = helper.connect(port)
      w1:write("victim\n")
      local s2, r2, w2 = helper.connect(port)
      assert.is_true(helper.eventually(function() return socks.victim ~= nil end))
      w2:write("killer\n")
      both:fill()
      assert.equal("done", r2:read_line(t(2)))
      assert.is_true(helper.eventually(function() return results.victim ~= nil end))
      failed_with("closed", table.unpack(results.victim, 1, 3))
      local s3, r3, w3 = helper.connect(port)
      w3:write("third\n")
      assert.equal("done", r3:read_line(t(2))) -- still serving
      s1:close()
      s2:close()
      s3:close()
      assert.is_false(server:is_closed())
      helper.await(server:close())
    end)
  end)
end)

describe("closing a server or a neighbour's connection while handlers are blocked in write", function()
  -- A server whose handlers write to clients that never read, until they
  -- block above the mark; results[i] gets what the blocked write returned.
  local function blocked_writers(n, opts)
    local results, blocked, socks = {}, 0, {}
    local server, port = helper.server(function(_, r, w)
      local id = tonumber(r:read_line(t(5)))
      socks[id] = r:socket()
      fill(r:socket(), w)
      blocked = blocked + 1
      results[id] = table.pack(w:write("more"))
    end, opts)
    local clients = {}
    for i = 1, n do
      local s, _, cw = helper.connect(port, { reader_buffer_size = 1024 })
      cw:write(i .. "\n")
      clients[i] = s
    end
    assert.is_true(helper.eventually(function() return blocked == n end, 5))
    coronet.sleep(t(0.02))
    return server, clients, results, socks
  end

  it("server:close{close_existing_connections=true} wakes every blocked write with closed and finishes within close_timeout", function()
    helper.run(function()
      local server, clients, results = blocked_writers(3, { close_timeout = t(0.2) })
      local t0 = coronet.now()
      helper.await(server:close({ close_existing_connections = true }), 3)
      assert.is_true(coronet.now() - t0 < t(1.5))
      for i = 1, 3 do
        assert.is_truthy(results[i])
        failed_with("closed", table.unpack(results[i], 1, 3))
        clients[i]:close()
      end
    end, 20)
  end)

  it("a handler closing another handler's connection wakes that handler's blocked write with closed", function()
    helper.run(function()
      local server, clients, results, socks = blocked_writers(2, { close_timeout = t(0.2) })
      socks[1]:abort()
      assert.is_true(helper.eventually(function() return results[1] ~= nil end))
      failed_with("closed", table.unpack(results[1], 1, 3))
      assert.is_nil(results[2]) -- the neighbour still waits
      socks[2]:abort()
      assert.is_true(helper.eventually(function() return results[2] ~= nil end))
      for i = 1, 2 do clients[i]:close() end
      helper.await(server:close())
    end, 20)
  end)
end)

describe("run's teardown during waits", function()
  it("a fiber with a <close> socket waiting forever in read_line: run ends clean", function()
    local seen = {}
    helper.run(function()
      local _, port = helper.server(function(_, r) seen.data = r:contents() end)
      coronet.spawn(function()
        local sock <close>, r = helper.connect(port)
        seen.read = table.pack(r:read_line(false))
        local _ = sock
      end)
      coronet.sleep(t(0.05))
    end)
    assert.equal("cancelled", seen.read[3])
  end)

  it("fibers blocked in write, flush and close_finished when run ends: run ends clean", function()
    helper.run(function()
      local sock, _, w = held_pair(function(sr) sr:contents() end, nil, { reader_buffer_size = 1024 })
      local other, _, ow = held_pair(function(sr) sr:contents() end, nil, { reader_buffer_size = 1024 })
      fill(sock, w)
      fill(other, ow)
      coronet.spawn(function() w:write("x") end)
      coronet.spawn(function() ow:flush(false) end)
      coronet.spawn(function()
        other:close()
        other:close_finished()
      end)
      coronet.sleep(t(0.05))
    end)
  end)
end)

describe("<close> and __gc during waits", function()
  it("a <close> socket in a fiber cancelled during read_line closes it; the peer sees EOF", function()
    helper.run(function()
      local seen = coronet.ivar()
      local _, port = helper.server(function(_, r) seen:fill(r:contents(t(5))) end)
      local f = coronet.spawn(function()
        local sock <close>, r = helper.connect(port)
        return r:read_line(t(5))
      end)
      coronet.sleep(t(0.05))
      f:cancel()
      failed_with("cancelled", f:join(t(2)))
      assert.equal("", seen.deferred:wait(t(2)))
    end)
  end)

  it("a <close> reader or writer going out of scope while another fiber waits on it wakes that fiber", function()
    helper.run(function()
      local sock, r, w, release = held_pair(function(sr) sr:contents() end)
      local f = waiting(function() return r:read_line(t(5)) end)
      do
        local scoped <close> = r
        local _ = scoped
      end
      failed_with("closed", f:join(t(2)))
      do
        local scoped <close> = w
        local _ = scoped
      end
      assert.is_true(w:is_closed())
      release()
      assert.is_true(sock:close_finished(t(2)))
    end)
  end)

  it("a waiting reader keeps its socket alive: dropping every other reference and collecting changes nothing", function()
    helper.run(function()
      local go = coronet.ivar()
      local _, port = helper.server(function(_, _, w)
        go.deferred:wait()
        w:write("still here\n")
      end)
      local f = coronet.spawn(function()
        local _, r = helper.connect(port)
        return r:read_line(t(5))
      end)
      coronet.sleep(t(0.05))
      collectgarbage()
      collectgarbage()
      go:fill()
      assert.equal("still here", f:join(t(2)))
    end)
  end)

  it("a fiber nobody references, waiting in read, is neither collected nor lost", function()
    helper.run(function()
      local go, got = coronet.ivar(), coronet.ivar()
      local _, port = helper.server(function(_, _, w)
        go.deferred:wait()
        w:write("hello\n")
      end)
      coronet.spawn(function()
        local _, r = helper.connect(port)
        got:fill(r:read_line(t(5)))
      end)
      coronet.sleep(t(0.05))
      collectgarbage()
      collectgarbage()
      go:fill()
      assert.equal("hello", got.deferred:wait(t(2)))
    end)
  end)

  it("a server nobody references keeps serving while handlers wait; collecting changes nothing", function()
    helper.run(function()
      local port
      do
        local server = helper.server(function(_, r, w)
          local line = r:read_line(t(5))
          w:write(line:upper() .. "\n")
        end)
        port = server:listening_on()
      end
      local s1, r1, w1 = helper.connect(port)
      coronet.sleep(t(0.02))
      collectgarbage()
      collectgarbage()
      w1:write("abc\n")
      assert.equal("ABC", r1:read_line(t(2)))
      local s2, r2, w2 = helper.connect(port)
      w2:write("def\n")
      assert.equal("DEF", r2:read_line(t(2)))
      s1:close()
      s2:close()
    end) -- run's teardown closes the server
  end)

  it("a <close> server going out of scope while its handlers wait: no handler starts after, the waiting one ends", function()
    helper.run(function()
      local ended = coronet.ivar()
      local port, closed_server
      local sock, r
      do
        local server <close> = helper.server(function(_, sr, sw)
          sw:write("hi\n")
          ended:fill(sr:read_line(t(5)))
        end)
        port, closed_server = server:listening_on(), server
        sock, r = helper.connect(port)
        assert.equal("hi", r:read_line(t(2)))
      end
      helper.await(closed_server:close_finished())
      local _, _, code = coronet.tcp.connect(helper.to(port))
      assert.equal("ECONNREFUSED", code)
      sock:close()
      ended.deferred:wait(t(2))
      assert.is_true(ended.deferred:is_determined())
    end)
  end)
end)

describe("hostile peers", function()
  it("a peer trickling one byte per millisecond cannot stretch a per-call timeout (read_line, read_until, really_read)", function()
    helper.run(function()
      local stop = coronet.ivar()
      local sock, r = helper.pair(function(_, w)
        while not stop.deferred:is_determined() do
          if not w:write("x") then return end
          coronet.sleep(0.001)
        end
      end, { reader_buffer_size = 1024 * 1024 })
      for _, call in ipairs({
        function() return r:read_line(t(0.2)) end,
        function() return r:read_until("|", { timeout = t(0.2) }) end,
        function() return r:really_read(100000, t(0.2)) end,
      }) do
        local t0 = coronet.now()
        failed_with("timeout", call())
        local took = coronet.now() - t0
        assert.is_true(took >= t(0.2) - 0.01 and took < t(0.2) + t(0.15), "took " .. took)
      end
      assert.is_true(r:buffered() > 0) -- the bytes stay
      stop:fill()
      sock:close()
    end)
  end)

  it("a peer draining slowly cannot stretch a per-call flush timeout or the send timeout of a write", function()
    helper.run(function()
      local stop = coronet.ivar()
      local sock, _, w = helper.pair(function(sr)
        while not stop.deferred:is_determined() do
          if not sr:read(64) then return end
          coronet.sleep(0.001)
        end
      end, nil, { reader_buffer_size = 1024 })
      fill(sock, w)
      sock:configure({ writer_buffer_size = 1024 * 1024 * 1024 })
      assert(w:write(string.rep("z", 4 * BIG))) -- minutes of work at 64 bytes a millisecond
      sock:configure({ writer_buffer_size = 1024 })
      coronet.sleep(0.001) -- a loop turn after fill's CPU work: deadlines come from the loop's clock (issue 7.1)
      local t0 = coronet.now()
      failed_with("timeout", w:flush(t(0.2)))
      local took = coronet.now() - t0
      assert.is_true(took >= t(0.2) - 0.01 and took < t(0.2) + t(0.15), "flush took " .. took)
      sock:settimeouts(nil, t(0.2), nil)
      t0 = coronet.now()
      failed_with("timeout", w:write("x"))
      took = coronet.now() - t0
      assert.is_true(took >= t(0.2) - 0.01 and took < t(0.2) + t(0.15), "write took " .. took)
      stop:fill()
      sock:abort()
    end, 20)
  end)

  it("a peer that resets while we are blocked in write with 4 MiB queued: the write fails, the socket closes", function()
    helper.run(function()
      local peer = coronet.ivar()
      local sock, _, w = helper.pair(function(sr)
        peer:fill(sr:socket())
        coronet.sleep(t(3))
      end, nil, { reader_buffer_size = 1024 })
      local f = coronet.spawn(function()
        sock:configure({ writer_buffer_size = 1024 * 1024 * 1024 })
        assert(w:write(string.rep("q", BIG)))
        sock:configure({ writer_buffer_size = 1024 })
        return w:write("more")
      end)
      local server_side = peer.deferred:wait(t(2))
      coronet.sleep(t(0.05))
      assert.is_false(f:is_done())
      server_side:abort() -- RST
      local ok, err, code = f:join(t(2))
      assert.is_nil(ok)
      assert.is_true(code == "ECONNRESET" or code == "EPIPE" or code == "closed", tostring(code))
      assert.is_truthy(tostring(err))
      local fok, _, fcode = w:flush(t(2))
      assert.is_nil(fok)
      assert.is_string(fcode)
      sock:close()
      assert.is_true(sock:close_finished(t(2)))
    end)
  end)

  it("a peer that never reads while we close: close_timeout bounds the close and close_finished returns", function()
    helper.run(function()
      local sock, _, w, release = held_pair(function(sr) sr:contents() end, { close_timeout = t(0.2) },
        { reader_buffer_size = 1024 })
      fill(sock, w)
      local t0 = coronet.now()
      sock:close()
      assert.is_true(sock:close_finished(t(3)))
      assert.is_true(coronet.now() - t0 < t(1))
      failed_with("timeout", w:flush(t(1))) -- the bytes were dropped
      release()
    end, 20)
  end)

  it("reading after EOF gives the same answer every time", function()
    helper.run(function()
      local _, r = helper.pair(function(_, w) w:write("tail") end)
      assert.equal("tail", r:peek(4, t(2)))
      assert.is_true(helper.eventually(function()
        return select(3, r:read_line(t(1))) == "closed"
      end))
      for _ = 1, 3 do
        failed_with("closed", r:read_line())
        failed_with("closed", r:read_until("|"))
        failed_with("closed", r:really_read(5))
        failed_with("closed", r:peek(5))
        assert.equal("tail", r:peek(4))
        assert.is_false(r:at_eof())
      end
      assert.equal("tail", r:read())
      for _ = 1, 3 do
        failed_with("closed", r:read())
        failed_with("closed", r:read_line())
        failed_with("closed", r:really_read(1))
        assert.equal("", r:contents())
        assert.equal("", r:receive("*a"))
        assert.same({ nil, "closed", "" }, { r:receive("*l") })
        assert.same({ nil, "closed", "" }, { r:receive(3) })
        assert.is_true(r:at_eof())
        assert.equal(0, r:buffered())
      end
    end)
  end)

  it("read, peek, receive, read_until and contents mixed over partial data hand out every byte once, in order", function()
    helper.run(function()
      local steps = {}
      for i = 1, 6 do steps[i] = coronet.ivar() end
      local _, r = helper.pair(function(_, w)
        local parts = { "alpha\r", "\nbe", "ta|gam", "ma\n12", "345", "rest" }
        for i, part in ipairs(parts) do
          steps[i].deferred:wait(t(5))
          w:write(part)
          w:flush()
        end
      end)
      steps[1]:fill()
      assert.equal("a", r:peek(1, t(2)))
      steps[2]:fill()
      assert.equal("alpha", r:read_line(t(2)))
      assert.equal("be", r:peek(2, t(2)))
      steps[3]:fill()
      assert.equal("beta|", r:read_until("|", { keep = true, timeout = t(2) }))
      assert.equal("g", r:read(1, t(2)))
      steps[4]:fill()
      assert.equal("amma", r:receive("*l"))
      steps[5]:fill()
      assert.equal("pre-12345", r:receive(5, "pre-"))
      steps[6]:fill()
      assert.equal("rest", r:contents(t(2)))
    end)
  end)

  it("max_connections=1: a client that resets at once frees the slot; the next client is served", function()
    helper.run(function()
      local served = 0
      local server, port = helper.server(function(_, r, w)
        local line = r:read_line(t(2))
        if line then
          served = served + 1
          w:write(line .. "!\n")
        end
      end, { max_connections = 1 })
      for _ = 1, 5 do
        local s = helper.connect(port)
        s:abort() -- RST before the server may even have accepted it
      end
      local s2, r2, w2 = helper.connect(port)
      w2:write("hello\n")
      assert.equal("hello!", r2:read_line(t(3)))
      s2:close()
      assert.equal(1, served)
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      helper.await(server:close())
    end)
  end)
end)

describe("max_connections = 1 and clients that go away while queued", function()
  it("clients that reset while waiting for the one slot neither block it nor crash a handler; the next client is served", function()
    helper.run(function()
      local release = coronet.ivar()
      local served = {}
      local server, port = helper.server(function(_, r, w)
        local line = r:read_line(t(2))
        served[#served + 1] = line or "-"
        if line == "A" then release.deferred:wait(t(5)) end
        if line then w:write(line .. "!\n") end
      end, { max_connections = 1 })
      local a, ra, wa = helper.connect(port)
      wa:write("A\n")
      assert.is_true(helper.eventually(function() return #served == 1 end))
      for i = 1, 3 do -- queued behind A (connected in the kernel, not accepted), then reset
        local s, _, w = helper.connect(port)
        w:write("B" .. i .. "\n")
        s:abort()
      end
      coronet.sleep(t(0.05))
      release:fill()
      assert.equal("A!", ra:read_line(t(2)))
      a:close()
      local c, rc, wc = helper.connect(port)
      wc:write("C\n")
      assert.equal("C!", rc:read_line(t(3)))
      c:close()
      assert.equal("A", served[1])
      assert.equal("C", served[#served])
      for i = 2, #served - 1 do -- a reset client's handler reads its line or the reset, nothing else
        assert.is_truthy(served[i] == "-" or served[i]:match("^B%d$"), served[i])
      end
      helper.await(server:close())
    end)
  end)
end)

describe("server errors and closes from inside handlers", function()
  -- An error value whose __tostring raises.
  local function hostile_error()
    return setmetatable({}, { __tostring = function() error("__tostring refuses", 0) end })
  end

  local function serves_after_failure(port)
    local s1, r1, w1 = helper.connect(port)
    w1:write("fail\n")
    failed_with("closed", r1:read(nil, t(2)))
    s1:close()
    local s2, r2, w2 = helper.connect(port)
    w2:write("fine\n")
    assert.equal("ok fine", r2:read_line(t(2)))
    s2:close()
  end

  local function handler(_, r, w)
    local line = r:read_line(t(5))
    if line == "fail" then error(hostile_error()) end
    w:write("ok " .. line .. "\n")
  end

  it("\"ignore\": a handler error whose __tostring raises is logged, and the server keeps serving", function()
    local lines = {}
    coronet.set_logger(function(msg) lines[#lines + 1] = msg end)
    local ok, err = pcall(helper.run, function()
      local server, port = helper.server(handler, { on_handler_error = "ignore" })
      serves_after_failure(port)
      assert.is_false(server:is_closed())
      helper.await(server:close())
    end)
    coronet.set_logger(nil)
    assert(ok, err)
    assert.equal(1, #lines)
    assert.is_truthy(lines[1]:find("raised", 1, true))
  end)

  it("a function: it gets the error value untouched, and the server keeps serving", function()
    helper.run(function()
      local got = {}
      local server, port = helper.server(handler, { on_handler_error = function(_, e) got[#got + 1] = e end })
      serves_after_failure(port)
      assert.is_true(helper.eventually(function() return #got == 1 end))
      assert.equal("table", type(got[1]))
      assert.is_false(server:is_closed())
      helper.await(server:close())
    end)
  end)

  it("a function that itself calls tostring on it and fails: the server closes and the run raises (mode says raise)", function()
    local ok, err = pcall(helper.run, function()
      local _, port = helper.server(handler, { on_handler_error = function(_, e) return "logged: " .. tostring(e) end })
      local s1, r1, w1 = helper.connect(port)
      w1:write("fail\n")
      r1:read(nil, t(2))
      s1:close()
      coronet.sleep(t(1))
      error("not reached")
    end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("__tostring refuses", 1, true))
    helper.assert_clean()
  end)

  it("\"raise\": the run raises the hostile value itself, untouched, and ends clean", function()
    local value = hostile_error()
    local ok, err = pcall(helper.run, function()
      local _, port = helper.server(function() error(value) end, { on_handler_error = "raise" })
      local s1, r1 = helper.connect(port)
      r1:read(nil, t(2))
      s1:close()
      coronet.sleep(t(1))
      error("not reached")
    end)
    assert.is_false(ok)
    assert.equal(value, err)
    helper.assert_clean()
  end)

  it("error(nil) in a handler under a function mode reaches it as nil, not as a traceback; the server keeps serving", function()
    helper.run(function()
      local calls, got = 0, "unset"
      local server, port = helper.server(function(_, r)
        r:read_line(t(5))
        error(nil)
      end, { on_handler_error = function(_, e) calls, got = calls + 1, e end })
      local s1, _, w1 = helper.connect(port)
      w1:write("x\n")
      assert.is_true(helper.eventually(function() return calls == 1 end))
      assert.is_nil(got)
      s1:close()
      assert.is_false(server:is_closed())
      helper.await(server:close())
    end)
  end)

  it("error(nil) under \"raise\": the run raises nil itself, untouched", function()
    local ok, err = pcall(helper.run, function()
      local _, port = helper.server(function() error(nil) end, { on_handler_error = "raise" })
      local s1, r1 = helper.connect(port)
      r1:read(nil, t(2))
      s1:close()
      coronet.sleep(t(1))
      error("not reached")
    end)
    assert.is_false(ok)
    assert.is_nil(err)
    helper.assert_clean()
  end)

  it("server:close() from inside a handler: that handler runs on, no new handler starts, close_finished is determined", function()
    helper.run(function()
      local server
      local handled = 0
      local finished = coronet.ivar()
      local port
      server, port = helper.server(function(_, r, w)
        handled = handled + 1
        local d = server:close()
        local line = r:read_line(t(2))
        w:write("after close: " .. tostring(line) .. "\n")
        w:flush()
        finished:fill(d:wait(t(2)))
      end)
      local s1, r1, w1 = helper.connect(port)
      w1:write("one\n")
      assert.equal("after close: one", r1:read_line(t(2)))
      finished.deferred:wait(t(2))
      assert.is_true(finished.deferred:is_determined())
      local _, _, code = coronet.tcp.connect(helper.to(port))
      assert.equal("ECONNREFUSED", code)
      s1:close()
      assert.equal(1, handled)
    end)
  end)

  it("server:close{close_existing_connections=true} from inside a handler closes its own connection too", function()
    helper.run(function()
      local server
      local result = coronet.ivar()
      local port
      server, port = helper.server(function(_, r)
        server:close({ close_existing_connections = true })
        result:fill(r:read_line(t(2)))
      end)
      local s1, r1 = helper.connect(port)
      local _, _, code = result.deferred:wait(t(2))
      assert.equal("closed", code)
      failed_with("closed", r1:read(nil, t(2)))
      s1:close()
      helper.await(server:close_finished())
    end)
  end)
end)

describe("unix sockets under the same adversary", function()
  it("closing from another fiber wakes a read and a blocked write with closed; the server file goes with the server", function()
    helper.run(function()
      local tcp = coronet.tcp
      local path = helper.unix_path("adv")
      local hold = coronet.ivar()
      local server = assert(tcp.Server.create(tcp.Where_to_listen.on_file(path), function()
        hold.deferred:wait(t(5))
      end))
      local s1, r1 = helper.connect(path)
      local reading = waiting(function() return r1:read_line(t(5)) end)
      s1:close()
      failed_with("closed", reading:join(t(2)))
      local s2, _, w2 = helper.connect(path)
      local writing = coronet.spawn(function()
        fill(s2, w2)
        return w2:write("more")
      end)
      coronet.sleep(t(0.1))
      assert.is_false(writing:is_done())
      s2:abort()
      failed_with("closed", writing:join(t(2)))
      hold:fill()
      helper.await(server:close())
      assert.is_nil(io.open(path))
    end, 20)
  end)
end)

describe("use of a closed server", function()
  it("listening_socket() answers nil, err, \"closed\" once closing has started, never a negative number", function()
    helper.run(function()
      local server, port = helper.server(function() end)
      local fd = server:listening_socket()
      assert.is_true(math.type(fd) == "integer" and fd >= 0)
      server:close()
      failed_with("closed", server:listening_socket())
      helper.await(server:close_finished())
      failed_with("closed", server:listening_socket())
      assert.equal(port, server:listening_on()) -- the address it had stays readable
    end)
  end)
end)
