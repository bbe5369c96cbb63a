-- spec/reader_try_spec.lua: the reader's non-waiting reads (try_read_line,
-- try_really_read, try_read, peek_at, discard) and wait_activity, the wait
-- for the next read event that any number of fibers may share.
local coronet = require "coronet"
local core = require "coronet.core"
local helper = require "helper"

local t = helper.t
local failed_with = helper.failed_with

-- A client connected to a server whose handler hands its side over and stays
-- until finish(): returns the client's socket, reader, writer, the server's
-- side as { sock, r, w }, and finish (which closes both sides and the server).
local function linked(client_opts)
  local got, done = coronet.ivar(), coronet.ivar()
  local server, port = helper.server(function(_, r, w)
    got:fill({ sock = r:socket(), r = r, w = w })
    done.deferred:wait()
  end)
  local sock, r, w = helper.connect(port, client_opts)
  helper.await(got.deferred)
  local peer = got.deferred:peek()
  local function finish()
    done:fill()
    sock:close()
    peer.sock:close()
    helper.await(server:close())
    assert(sock:close_finished(t(2)))
  end
  return sock, r, peer, finish
end

-- Waits until the reader holds n bytes.
local function holds(r, n)
  assert(helper.eventually(function() return r:buffered() >= n end), "the bytes never arrived")
  assert.equal(n, r:buffered())
end

-- The number of values and the values of a call, as a table.
local function results(...) return table.pack(...) end

describe("reader:try_read_line", function()
  it("returns whole buffered lines without their terminator, nil when none is whole", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      peer.w:write("one\ntwo\r\n\nthree")
      holds(r, 15)
      assert.equal("one", r:try_read_line())
      assert.equal("two", r:try_read_line())
      assert.equal("", r:try_read_line())
      local none = results(r:try_read_line())
      assert.equal(1, none.n)
      assert.is_nil(none[1])
      assert.equal(5, r:buffered()) -- the partial line stays
      peer.w:write("\n")
      holds(r, 6)
      assert.equal("three", r:try_read_line())
      assert.is_nil(r:try_read_line())
      assert.equal(0, r:buffered())
      finish()
    end)
  end)

  it("strips one \\r before the \\n and keeps a lone \\r", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      peer.w:write("a\r\r\nb\rc\n\r\n")
      holds(r, 10)
      assert.equal("a\r", r:try_read_line())
      assert.equal("b\rc", r:try_read_line())
      assert.equal("", r:try_read_line())
      assert.equal(0, r:buffered())
      finish()
    end)
  end)

  it("takes a line that fills the cap with its \\n; a full buffer without one is line_too_long, try_read recovers",
    function()
      helper.run(function()
        local _, r, peer, finish = linked({ reader_buffer_size = 16 })
        peer.w:write(string.rep("x", 15) .. "\n")
        holds(r, 16)
        assert.equal(string.rep("x", 15), r:try_read_line())
        peer.w:write(string.rep("y", 16) .. "\nok\n")
        holds(r, 16) -- the cap holds: the "\n" stays in the kernel
        failed_with("line_too_long", r:try_read_line())
        assert.equal(16, r:buffered()) -- nothing consumed
        failed_with("line_too_long", r:try_read_line())
        assert.equal(string.rep("y", 16), r:try_read())
        holds(r, 4)
        assert.equal("", r:try_read_line())
        assert.equal("ok", r:try_read_line())
        finish()
      end)
    end)

  it("follows read_line's cap rule past the cap: the terminator never counts", function()
    helper.run(function()
      local _, r, peer, finish = linked({ reader_buffer_size = 16 })
      peer.w:write(string.rep("z", 16) .. "\r\n" .. string.rep("w", 17) .. "\n")
      assert.equal(18, #r:peek(18)) -- a waiting read grows the buffer past the cap
      assert.equal(string.rep("z", 16), r:try_read_line())
      assert.equal(18, #r:peek(18))
      failed_with("line_too_long", r:try_read_line())
      assert.equal(18, r:buffered())
      finish()
    end)
  end)
end)

describe("reader:try_really_read", function()
  it("returns exactly n buffered bytes, consumed, or nil leaving them; 0 gives \"\"", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      assert.equal("", r:try_really_read(0))
      assert.is_nil(r:try_really_read(1))
      peer.w:write("abcdef")
      holds(r, 6)
      assert.equal("", r:try_really_read(0))
      assert.equal("abc", r:try_really_read(3))
      local none = results(r:try_really_read(4))
      assert.equal(1, none.n)
      assert.is_nil(none[1])
      assert.equal(3, r:buffered())
      assert.equal("def", r:try_really_read(3))
      assert.equal(0, r:buffered())
      finish()
    end)
  end)
end)

describe("reader:try_read", function()
  it("returns up to n buffered bytes (default all), consumed; \"\" when none", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      assert.equal("", r:try_read())
      assert.equal("", r:try_read(5))
      peer.w:write("0123456789")
      holds(r, 10)
      assert.equal("", r:try_read(0))
      assert.equal("01", r:try_read(2))
      assert.equal("2345", r:try_read(4))
      assert.equal("6789", r:try_read(100))
      assert.equal("", r:try_read())
      peer.w:write("abc")
      holds(r, 3)
      assert.equal("abc", r:try_read())
      finish()
    end)
  end)
end)

describe("reader:peek_at", function()
  it("returns up to n bytes from a 0-based offset, never consuming; \"\" at or past the end", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      assert.equal("", r:peek_at(0, 4))
      peer.w:write("0123456789")
      holds(r, 10)
      assert.equal("0123", r:peek_at(0, 4))
      assert.equal("456", r:peek_at(4, 3))
      assert.equal("89", r:peek_at(8, 10))
      assert.equal("", r:peek_at(3, 0))
      assert.equal("", r:peek_at(10, 1))
      assert.equal("", r:peek_at(11, 1))
      assert.equal("", r:peek_at(math.maxinteger, math.maxinteger))
      assert.equal("0123456789", r:peek_at(0, math.maxinteger))
      assert.equal(10, r:buffered())
      r:try_read(5)
      assert.equal("56", r:peek_at(0, 2))
      finish()
    end)
  end)
end)

describe("reader:discard", function()
  it("drops min(n, buffered) bytes and returns how many", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      assert.equal(0, r:discard(5))
      peer.w:write("0123456789")
      holds(r, 10)
      assert.equal(0, r:discard(0))
      assert.equal(3, r:discard(3))
      assert.equal("34", r:try_read(2))
      assert.equal(5, r:discard(math.maxinteger))
      assert.equal(0, r:buffered())
      finish()
    end)
  end)
end)

describe("the non-waiting reads", function()
  local calls = {
    { "try_really_read", function(r, x) return r:try_really_read(x) end, 1 },
    { "try_read", function(r, x) return r:try_read(x) end, 1 },
    { "peek_at", function(r, x) return r:peek_at(x, 1) end, 1 },
    { "peek_at", function(r, x) return r:peek_at(0, x) end, 2 },
    { "discard", function(r, x) return r:discard(x) end, 1 },
  }

  it("raise on a count or offset that is negative, fractional or not a number, naming the method and argument",
    function()
      helper.run(function()
        local _, r, _, finish = linked()
        for _, c in ipairs(calls) do
          for _, bad in ipairs({ -1, 1.5, "3", {}, true }) do
            local ok, msg = pcall(c[2], r, bad)
            assert.is_false(ok, c[1] .. " accepted " .. tostring(bad))
            assert.matches("bad argument #" .. c[3] .. " to '" .. c[1] .. "'", msg, 1, true)
          end
        end
        for _, name in ipairs({ "try_really_read", "peek_at", "discard" }) do
          assert.has_error(function() r[name](r) end) -- required
        end
        assert.equal("", r:try_read(nil))
        assert.equal("", r:try_read(2.0)) -- a float with an integer value is an integer
        finish()
      end)
    end)

  it("never yield: they work in a coroutine of the user's and in a table.sort comparator", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      peer.w:write("ab\ncd\nefgh")
      holds(r, 10)
      local got = coroutine.wrap(function() return r:try_read_line() end)()
      assert.equal("ab", got)
      local seen = {}
      table.sort({ 3, 1, 2 }, function(a, b)
        seen[#seen + 1] = r:peek_at(0, 1) .. r:discard(0) .. r:try_read(0)
        return a < b
      end)
      assert.equal("c0", seen[1])
      assert.equal("cd", coroutine.wrap(function() return r:try_read_line() end)())
      assert.equal("ef", coroutine.wrap(function() return r:try_really_read(2) end)())
      assert.equal(2, coroutine.wrap(function() return r:discard(9) end)())
      finish()
    end)
  end)

  it("behave as on an empty buffer on a closed reader or socket, also from the main thread", function()
    local readers = {}
    helper.run(function()
      local sock, r, peer, finish = linked()
      peer.w:write("line\nmore")
      holds(r, 9)
      r:close()
      readers[1] = r
      local sock2, r2, peer2, finish2 = linked()
      peer2.w:write("line\nmore")
      holds(r2, 9)
      sock2:abort()
      readers[2] = r2
      for _, x in ipairs(readers) do
        assert.is_nil(x:try_read_line())
        assert.is_nil(x:try_really_read(1))
        assert.equal("", x:try_really_read(0))
        assert.equal("", x:try_read())
        assert.equal("", x:peek_at(0, 4))
        assert.equal(0, x:discard(4))
      end
      finish()
      finish2()
      assert.is_true(sock:is_closed())
    end)
    for _, x in ipairs(readers) do -- the run is over: no fiber, the sockets closed
      assert.is_nil(x:try_read_line())
      assert.equal("", x:try_read(3))
      assert.equal("", x:peek_at(0, 4))
      assert.equal(0, x:discard(4))
      assert.has_error(function() x:try_read(-1) end)
    end
  end)

  it("consume under a waiting read_line, which then wakes for what it still needs", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      peer.w:write("abc")
      holds(r, 3)
      local reader = coronet.spawn(function() return r:read_line(t(2)) end)
      coronet.sleep(0.01) -- the fiber waits for its line
      assert.equal("abc", r:try_read()) -- not busy: it just consumes
      peer.w:write("x\n") -- fewer bytes than the line waited for when it started
      assert.equal("x", reader:join())
      peer.w:write("p")
      holds(r, 1)
      reader = coronet.spawn(function() return r:read_line(t(2)) end)
      coronet.sleep(0.01)
      assert.equal(1, r:discard(1))
      peer.w:write("q\n")
      assert.equal("q", reader:join())
      finish()
    end)
  end)
end)

describe("reader:wait_activity", function()
  it("returns true at the next arrival of bytes, without consuming them", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      local waiter = coronet.spawn(function() return r:wait_activity(t(2)) end)
      coronet.sleep(0.01)
      peer.w:write("hi")
      assert.is_true(waiter:join())
      assert.equal("hi", r:try_read())
      finish()
    end)
  end)

  it("waits for the next event even when bytes are already buffered", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      peer.w:write("x")
      holds(r, 1)
      failed_with("timeout", r:wait_activity(0.05))
      assert.equal(1, r:buffered())
      local waiter = coronet.spawn(function() return r:wait_activity(t(2)) end)
      coronet.sleep(0.01)
      peer.w:write("y")
      assert.is_true(waiter:join())
      assert.equal("xy", r:try_read())
      finish()
    end)
  end)

  it("fails with closed at the peer's EOF, at once afterwards, and the bytes stay readable", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      peer.w:write("tail")
      holds(r, 4)
      local waiter = coronet.spawn(function() return r:wait_activity(t(2)) end)
      coronet.sleep(0.01)
      peer.sock:close()
      failed_with("closed", waiter:join())
      failed_with("closed", r:wait_activity(t(2)))
      assert.equal("tail", r:try_read())
      finish()
    end)
  end)

  it("fails with ECONNRESET when the peer aborts", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      local waiter = coronet.spawn(function() return r:wait_activity(t(2)) end)
      coronet.sleep(0.01)
      peer.sock:abort()
      failed_with("ECONNRESET", waiter:join())
      failed_with("ECONNRESET", r:wait_activity(t(2)))
      finish()
    end)
  end)

  for _, how in ipairs({ "reader:close", "socket:close", "socket:abort" }) do
    it("fails with closed when another fiber calls " .. how, function()
      helper.run(function()
        local sock, r, _, finish = linked()
        local waiter = coronet.spawn(function() return r:wait_activity(t(2)) end)
        coronet.sleep(0.01)
        if how == "reader:close" then r:close() elseif how == "socket:close" then sock:close() else sock:abort() end
        failed_with("closed", waiter:join())
        failed_with("closed", r:wait_activity(t(2))) -- at once, no raise
        finish()
      end)
    end)
  end

  it("times out, cancels, and refuses a stray coroutine.resume; none is sticky", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      failed_with("timeout", r:wait_activity(0.02))
      local co
      local waiter = coronet.spawn(function()
        co = coroutine.running()
        return r:wait_activity(t(2))
      end)
      coronet.sleep(0.01)
      local ok, value, message = coroutine.resume(co)
      assert.is_true(ok)
      assert.is_nil(value)
      assert.matches("stray coroutine.resume", message)
      assert.is_false(waiter:is_done())
      peer.w:write("a")
      assert.is_true(waiter:join())
      local cancelled = coronet.spawn(function() return table.pack(r:wait_activity(t(2))) end)
      coronet.sleep(0.01)
      cancelled:cancel()
      local got = cancelled:join()
      failed_with("cancelled", table.unpack(got, 1, got.n))
      waiter = coronet.spawn(function() return r:wait_activity(t(2)) end)
      coronet.sleep(0.01)
      peer.w:write("b")
      assert.is_true(waiter:join())
      assert.equal("ab", r:try_read())
      finish()
    end)
  end)

  it("wakes every waiting fiber, beside a fiber waiting in read_line", function()
    helper.run(function()
      local _, r, peer, finish = linked()
      local watchers = {}
      for i = 1, 3 do watchers[i] = coronet.spawn(function() return r:wait_activity(t(2)) end) end
      local line = coronet.spawn(function() return r:read_line(t(2)) end)
      coronet.sleep(0.01)
      peer.w:write("line\n")
      for i = 1, 3 do assert.is_true(watchers[i]:join()) end
      assert.equal("line", line:join())
      for i = 1, 3 do watchers[i] = coronet.spawn(function() return r:wait_activity(t(2)) end) end
      coronet.sleep(0.01)
      peer.sock:close()
      for i = 1, 3 do failed_with("closed", watchers[i]:join()) end
      finish()
    end)
  end)

  it("lets a woken fiber close the socket while other fibers are still to be woken", function()
    helper.run(function()
      local sock, r, peer, finish = linked()
      local first = coronet.spawn(function()
        local ok = r:wait_activity(t(2))
        sock:abort()
        return ok
      end)
      local second = coronet.spawn(function() return r:wait_activity(t(2)) end)
      coronet.sleep(0.01)
      peer.w:write("bye")
      assert.is_true(first:join())
      local got = table.pack(second:join())
      assert.is_true(got[1] == true or got[3] == "closed")
      assert.equal("", r:try_read())
      finish()
    end)
  end)

  it("raises outside a fiber naming coronet.spawn, and on a bad timeout", function()
    helper.run(function()
      local _, r, _, finish = linked()
      local ok, msg = pcall(coroutine.wrap(function() return r:wait_activity(1) end))
      assert.is_false(ok)
      assert.matches("coronet.spawn", msg, 1, true)
      assert.has_error(function() r:wait_activity(-1) end)
      assert.has_error(function() r:wait_activity("soon") end)
      finish()
    end)
  end)

  it("leaves the cap alone: a watcher that never consumes does not make the buffer grow", function()
    helper.run(function()
      local cap, total = 1024, 10240
      local sock, r, peer, finish = linked({ reader_buffer_size = cap })
      local most, wakes = 0, 0
      local watcher = coronet.spawn(function()
        while r:wait_activity(t(2)) do
          wakes = wakes + 1
          most = math.max(most, r:buffered())
        end
      end)
      coronet.sleep(0.01)
      peer.w:write(string.rep("c", total))
      holds(r, cap)
      coronet.sleep(0.05)
      assert.equal(cap, r:buffered())
      assert.is_true(most <= cap and wakes >= 1)
      -- draining by try_read with wait_activity gets every byte
      local got = 0
      local drainer = coronet.spawn(function()
        while got < total do
          got = got + #r:try_read()
          most = math.max(most, r:buffered())
          if got < total then
            local waited = r:buffered() > 0 or r:wait_activity(t(2))
            assert(waited, "stalled")
          end
        end
      end)
      drainer:join()
      assert.equal(total, got)
      assert.is_true(most <= cap)
      sock:close()
      watcher:join()
      finish()
    end)
  end)
end)

describe("reader:wait_activity and the collector", function()
  it("a socket reachable only from a fiber waiting in wait_activity is kept, then collected", function()
    helper.run(function()
      local got, done = coronet.ivar(), coronet.ivar()
      local server, port = helper.server(function(_, _, w)
        got:fill(w)
        done.deferred:wait()
      end)
      local waiter = coronet.spawn(function()
        local _, r = helper.connect(port)
        local first = table.pack(r:wait_activity(t(2)))
        local data = r:try_read()
        local second = table.pack(r:wait_activity(t(2)))
        return first, data, second
      end)
      helper.await(got.deferred)
      for _ = 1, 3 do collectgarbage("collect") end
      coronet.sleep(0.01)
      for _ = 1, 3 do collectgarbage("collect") end
      got.deferred:peek():write("kept")
      done:fill() -- the server closes after "kept"
      local first, data, second = waiter:join()
      assert.is_true(first[1])
      assert.equal("kept", data)
      failed_with("closed", table.unpack(second, 1, second.n))
      waiter = nil
      assert.is_true(helper.eventually(function()
        collectgarbage("collect")
        return core.live() == 1 -- the server alone: the collected socket closed
      end))
      helper.await(server:close())
    end)
  end)

  it("a run that raises while fibers wait in wait_activity ends clean", function()
    local ok, err = pcall(helper.run, function()
      local _, r = linked()
      for _ = 1, 3 do coronet.spawn(function() return r:wait_activity() end) end
      coronet.spawn(function() return r:read_line() end)
      coronet.sleep(0.01)
      error("stop here")
    end)
    assert.is_false(ok)
    assert.matches("stop here", tostring(err), 1, true)
    collectgarbage("collect")
    helper.assert_clean()
  end)

  it("a cancelled watcher leaves nothing behind when its socket is collected", function()
    helper.run(function()
      local server, port = helper.server(function(_, r) r:read() end)
      local waiter = coronet.spawn(function()
        local _, r = helper.connect(port)
        return r:wait_activity(t(5))
      end)
      coronet.sleep(0.05)
      waiter:cancel()
      waiter:join()
      waiter = nil
      assert.is_true(helper.eventually(function()
        collectgarbage("collect")
        return core.live() == 1
      end))
      helper.await(server:close())
    end)
  end)
end)
