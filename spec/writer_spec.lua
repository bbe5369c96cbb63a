-- spec/writer_spec.lua: the writer: batching, flush, back-pressure at the
-- high-water mark, buffer_age_limit and the close sequence.
local coronet = require "coronet"
local helper = require "helper"
local errors = coronet.errors

local pair = helper.pair

-- A client connected to a server that reads everything until EOF (its reader
-- holds `cap` bytes, default 16 MiB); returns socket, reader, writer and a
-- deferred that gets (data, code).
local function sink(client_opts, cap)
  local _, port, got = helper.recording_server({ reader_buffer_size = cap or 16 * 1024 * 1024 })
  local sock, r, w = helper.connect(port, client_opts)
  return sock, r, w, got
end

describe("writer", function()
  it("writes strings and arrays of strings mixed in one call", function()
    helper.run(function()
      local sock, _, w, got = sink()
      assert.is_true(w:write("a", { "b", "c" }, "d", { "e" }, 42))
      assert.is_true(w:write({ "x", "y" }))
      -- a bad argument raises before any byte of the call is taken
      assert.has_error(function() w:write({ "ok", {} }) end)
      assert.has_error(function() w:write("ok", true) end)
      assert.has_error(function() w:write("ok", {}) end) -- an empty table is not an array of strings
      assert.has_error(function() w:write(setmetatable({}, { __tostring = function() return "ok" end })) end)
      w:close()
      sock:close()
      local data, code = got:wait(helper.t(2))
      assert.is_nil(code)
      assert.equal("abcde42xy", data)
    end)
  end)

  it("pending() counts unflushed bytes and flush() empties it", function()
    helper.run(function()
      local sock, _, w, got = sink()
      w:write("hello", " world")
      assert.equal(11, w:pending()) -- small writes wait for the end of the turn
      assert.is_true(w:flush())
      assert.equal(0, w:pending())
      assert.is_true(w:flush()) -- nothing pending: true at once
      assert.equal(11, sock:stats().bytes_out)
      w:close()
      assert.is_true(w:is_closed())
      local data = got:wait(helper.t(2))
      assert.equal("hello world", data)
    end)
  end)

  it("many small writes in one turn arrive intact and in order", function()
    helper.run(function()
      local _, _, w, got = sink()
      local expected = {}
      for i = 1, 20000 do
        local s = i .. ","
        expected[i] = s
        assert.is_true(w:write(s))
      end
      w:close()
      local data, code = got:wait(helper.t(5))
      assert.is_nil(code)
      assert.equal(#table.concat(expected), #data)
      assert.is_true(data == table.concat(expected))
    end)
  end)

  it("a write above the high-water mark yields until the peer drains it", function()
    helper.run(function()
      local start_reading = coronet.ivar()
      local total = 8 * 1024 * 1024
      local got = coronet.ivar()
      local _, _, w = pair(function(reader)
        start_reading.deferred:wait()
        local n = 0
        while true do
          local chunk = reader:read()
          if not chunk then break end
          n = n + #chunk
        end
        got:fill(n)
      end, { writer_buffer_size = 64 * 1024 })
      assert.equal(64 * 1024, w:hwm())
      local chunk = string.rep("w", 256 * 1024)
      local done, returned_at = false, nil
      local max_pending = 0
      local writer = coronet.spawn(function()
        for _ = 1, total // #chunk do
          local ok, err, code = w:write(chunk)
          if not ok then return nil, err, code end
          max_pending = math.max(max_pending, w:pending())
        end
        done = true
        returned_at = coronet.now()
        return w:flush()
      end)
      coronet.sleep(helper.t(0.2))
      assert.is_false(done) -- blocked: the peer does not read
      assert.is_true(w:pending() > w:hwm())
      local released_at = coronet.now()
      start_reading:fill()
      assert.is_true(writer:join(helper.t(10)))
      assert.is_true(returned_at >= released_at)
      -- back-pressure: never more than the mark plus one chunk pending after a write
      assert.is_true(max_pending <= w:hwm() + #chunk, "max pending " .. max_pending)
      w:close()
      assert.equal(total, got.deferred:wait(helper.t(10)))
    end, 20)
  end)

  it("write with a timeout above the mark fails with timeout when the peer does not read", function()
    helper.run(function()
      local release = coronet.ivar()
      local sock, _, w = pair(function() release.deferred:wait() end, { writer_buffer_size = 16 * 1024 })
      sock:settimeouts(nil, helper.t(0.2), nil)
      local chunk = string.rep("q", 1024 * 1024)
      local t0 = coronet.now()
      local ok, err, code
      for _ = 1, 64 do -- enough to fill any loopback socket buffers
        ok, err, code = w:write(chunk)
        if not ok then break end
      end
      assert.is_nil(ok)
      assert.equal("timeout", code)
      assert.is_true(errors.is(err, "timeout"))
      assert.is_true(coronet.now() - t0 >= helper.t(0.15))
      release:fill()
      sock:abort()
    end)
  end)

  it("buffer_age_limit: a peer that never reads makes a later write or flush fail with stalled", function()
    helper.run(function()
      local release = coronet.ivar()
      -- The age counts from the oldest unflushed byte, on the loop's clock,
      -- which is read when a loop turn begins: t0 is taken before the turn
      -- that writes, or a loaded machine makes the limit look early.
      local t0 = coronet.now()
      local sock, _, w = pair(function() release.deferred:wait() end,
        { buffer_age_limit = helper.t(0.3), writer_buffer_size = 256 * 1024 * 1024 })
      local chunk = string.rep("s", 1024 * 1024)
      for _ = 1, 24 do
        assert.is_true(w:write(chunk)) -- below the (huge) mark: never waits
      end
      assert.is_true(w:pending() > 0)
      local ok, err, code = w:flush(helper.t(5))
      local elapsed = coronet.now() - t0
      assert.is_nil(ok)
      assert.equal("stalled", code)
      assert.is_true(errors.is(err, code))
      assert.is_true(elapsed >= helper.t(0.3) - 0.002, "elapsed " .. elapsed) -- the loop clock counts whole ms
      assert.is_true(elapsed < helper.t(5), "elapsed " .. elapsed)
      local ok2, _, code2 = w:write("more")
      assert.is_nil(ok2)
      assert.equal("stalled", code2)
      assert.is_true(sock:is_closed())
      release:fill()
    end)
  end)

  it("buffer_age_limit with no waiter closes the connection without raising", function()
    helper.run(function()
      local release = coronet.ivar()
      local sock, _, w = pair(function() release.deferred:wait() end,
        { buffer_age_limit = helper.t(0.2), writer_buffer_size = 256 * 1024 * 1024 })
      local chunk = string.rep("n", 1024 * 1024)
      for _ = 1, 24 do assert.is_true(w:write(chunk)) end
      local deadline = coronet.now() + helper.t(3)
      while not sock:is_closed() and coronet.now() < deadline do -- nobody waits on the writer
        coronet.sleep(helper.t(0.05))
      end
      assert.is_true(sock:is_closed())
      local ok, err, code = w:write("late")
      assert.is_nil(ok)
      assert.equal("stalled", code)
      assert.is_true(errors.is(err, code))
      release:fill()
    end)
  end)

  it("closing the reader first does not break the writer's final flush", function()
    helper.run(function()
      local payload = string.rep("0123456789", 200 * 1024) -- 2 MB
      local sock, r, w, got = sink({ writer_buffer_size = 4 * 1024 * 1024 })
      r:close()
      assert.is_true(r:is_closed())
      assert.is_false(sock:is_closed()) -- the writer is still open
      assert.is_true(w:write(payload))
      w:close()
      assert.is_true(sock:close_finished(helper.t(5)))
      local data, code = got:wait(helper.t(5))
      assert.is_nil(code)
      assert.equal(#payload, #data)
      assert.is_true(data == payload)
    end)
  end)

  it("closing with unread input still delivers every flushed byte (lingering close)", function()
    helper.run(function()
      local payload = string.rep("0123456789", 200 * 1024) -- 2 MB
      local _, port, got = helper.recording_server({ reader_buffer_size = 16 * 1024 * 1024 }, "unread by the client\n")
      local sock, r, w = helper.connect(port, { writer_buffer_size = 4 * 1024 * 1024 })
      coronet.sleep(helper.t(0.05)) -- the server's line has arrived, unread
      assert.is_true(w:write(payload))
      r:close()
      w:close()
      assert.is_true(sock:close_finished(helper.t(5)))
      local data, code = got:wait(helper.t(5))
      assert.is_nil(code)
      assert.equal(#payload, data and #data)
    end)
  end)

  it("writer:close() then the peer sees EOF after all data", function()
    helper.run(function()
      local sock, r, w = pair(function(reader, writer)
        local data = reader:contents()
        writer:write("got " .. #data .. "\n")
      end, nil, { reader_buffer_size = 1024 * 1024 })
      w:write("abc", "def")
      w:write(string.rep("g", 100000))
      w:close()
      assert.is_true(w:is_closed())
      assert.has_error(function() w:write("x") end)
      w:close() -- idempotent
      assert.equal("got 100006", r:read_line({ timeout = helper.t(3) }))
      sock:close()
    end)
  end)

  it("write after the socket closed fails with closed", function()
    helper.run(function()
      local sock, _, w = sink()
      sock:close()
      local ok, err, code = w:write("x")
      assert.is_nil(ok)
      assert.equal("closed", code)
      assert.is_true(errors.is(err, "closed"))
    end)
  end)

  it("writing to a peer that reset the connection fails instead of raising", function()
    helper.run(function()
      local sock, r, w = pair(function(_, writer) writer:socket():abort() end)
      local _, _, rcode = r:read({ timeout = helper.t(2) })
      assert.is_true(rcode == "closed" or rcode == "ECONNRESET", tostring(rcode))
      local ok, code
      for _ = 1, 50 do
        local err
        ok, err, code = w:write(string.rep("r", 64 * 1024))
        if ok then ok, err, code = w:flush(helper.t(2)) end
        if not ok then break end
        coronet.sleep(helper.t(0.01))
      end
      assert.is_nil(ok)
      assert.is_string(code)
      sock:close()
    end)
  end)
end)

describe("writer concurrency and close", function()
  -- A connection whose peer never reads, and a fiber blocked in write above the mark.
  local function blocked_writer()
    local release = coronet.ivar()
    local sock, _, w = pair(function() release.deferred:wait() end, { writer_buffer_size = 1024 })
    local blocked = coronet.spawn(function()
      for _ = 1, 256 do
        local ok, err, code = w:write(string.rep("b", 1024 * 1024))
        if not ok then return nil, err, code end
      end
      return "never blocked"
    end)
    coronet.sleep(helper.t(0.1))
    assert.is_false(blocked:is_done())
    return sock, w, blocked, function() release:fill() end
  end

  it("a second fiber writing or flushing while one waits gets busy at once", function()
    helper.run(function()
      local sock, w, blocked, release = blocked_writer()
      local t0 = coronet.now()
      local ok, err, code = w:write("second")
      assert.is_nil(ok)
      assert.equal("busy", code)
      assert.is_true(errors.is(err, "busy"))
      ok, err, code = w:flush(helper.t(1))
      assert.is_nil(ok)
      assert.equal("busy", code)
      assert.is_true(coronet.now() - t0 < helper.t(0.5))
      sock:abort()
      blocked:join(helper.t(2))
      release()
    end)
  end)

  it("closing the socket from another fiber wakes a writer waiting above the mark with closed", function()
    helper.run(function()
      local sock, _, blocked, release = blocked_writer()
      local t0 = coronet.now()
      sock:close()
      local ok, err, code = blocked:join(helper.t(3))
      assert.is_nil(ok)
      assert.equal("closed", code)
      assert.is_true(errors.is(err, "closed"))
      assert.is_true(coronet.now() - t0 < helper.t(1))
      release()
    end, 20)
  end)

  it("flushed() is a deferred determined once the kernel has taken the bytes", function()
    helper.run(function()
      local sock, _, w, got = sink()
      w:write("abc")
      local d = w:flushed()
      assert.is_false(d:is_determined())
      d:wait(helper.t(2))
      assert.is_true(d:is_determined())
      assert.equal(0, w:pending())
      w:close()
      assert.equal("abc", (got:wait(helper.t(2))))
      sock:close()
    end)
  end)
end)

describe("SIGPIPE", function()
  it("loading the module sets SIGPIPE to ignored when it was at its default", function()
    -- a fresh process with SIGPIPE at its default disposition (SigIgn bit 13 clear)
    local script = [[
      local function ignored()
        local f = io.open("/proc/self/status")
        local mask = f:read("a"):match("SigIgn:%s*(%x+)")
        f:close()
        return (tonumber(mask, 16) >> 12) & 1 == 1
      end
      local before = ignored()
      package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      package.cpath = "build/?.so;" .. package.cpath
      require "coronet"
      io.write(tostring(before), " ", tostring(ignored()))
    ]]
    local p = assert(io.popen("exec env --default-signal=PIPE lua5.4 -e '" .. script .. "' 2>&1"))
    local out = p:read("a")
    p:close()
    assert.equal("false true", out)
  end)
end)
