-- spec/with_connection_spec.lua: coronet.tcp.with_connection runs f with the
-- connection and closes it (flushing first) before returning or re-raising.
local coronet = require "coronet"
local helper = require "helper"
local tcp = coronet.tcp
local errors = coronet.errors

-- A server that greets its client with "hello\n", then records everything the
-- client sends until EOF; returns server, port and a deferred of (data, code).
local function recording_server(opts)
  return helper.recording_server(opts, "hello\n")
end

describe("coronet.tcp.with_connection", function()
  it("calls f(socket, reader, writer) and returns all its results after closing", function()
    helper.run(function()
      local _, port, received = recording_server()
      local seen_sock
      local results = table.pack(tcp.with_connection(helper.to(port), function(sock, r, w)
        seen_sock = sock
        assert.equal(r, sock:reader())
        assert.equal(w, sock:writer())
        assert.equal("hello", r:read_line())
        w:write("payload-", "one")
        assert.is_false(sock:is_closed())
        return 1, nil, "three"
      end))
      assert.equal(3, results.n)
      assert.equal(1, results[1])
      assert.is_nil(results[2])
      assert.equal("three", results[3])
      assert.is_true(seen_sock:is_closed())
      assert.is_true(seen_sock:close_finished(0)) -- the descriptor is already closed
      local data, code = received:wait(helper.t(2))
      assert.equal("payload-one", data) -- flushed before the close
      assert.is_nil(code)
    end)
  end)

  it("flushes a large pending write before it returns", function()
    helper.run(function()
      local _, port, received = recording_server({ reader_buffer_size = 4 * 1024 * 1024 })
      local big = string.rep("0123456789abcdef", 64 * 1024) -- 1 MiB
      local ret = tcp.with_connection(helper.to(port), function(_, r, w)
        assert.equal("hello", r:read_line())
        w:write(big)
        return "done"
      end, { writer_buffer_size = 4 * 1024 * 1024 })
      assert.equal("done", ret)
      local data = received:wait(helper.t(5))
      assert.equal(#big, #data)
      assert.is_true(data == big)
    end)
  end)

  it("close() with unread input still delivers every flushed byte (lingering close)", function()
    helper.run(function()
      local _, port, received = helper.recording_server({ reader_buffer_size = 4 * 1024 * 1024 },
        string.rep("u", 256 * 1024)) -- more than the client will ever read
      local big = string.rep("0123456789abcdef", 64 * 1024) -- 1 MiB
      tcp.with_connection(helper.to(port), function(_, r, w)
        -- a 16-byte reader stops reading: the rest stays unread in the kernel
        assert.equal("uuuuuu", r:peek(6))
        w:write(big)
      end, { reader_buffer_size = 16, writer_buffer_size = 4 * 1024 * 1024 })
      local data, code = received:wait(helper.t(5))
      assert.is_nil(code)
      assert.equal(#big, data and #data)
    end)
  end)

  it("re-raises f's error after the socket is closed", function()
    helper.run(function()
      local _, port, received = recording_server()
      local seen_sock
      local ok, err = pcall(tcp.with_connection, helper.to(port), function(sock, _, w)
        seen_sock = sock
        w:write("before-error")
        error("boom from f")
      end)
      assert.is_false(ok)
      assert.matches("boom from f", tostring(err), 1, true)
      assert.is_true(seen_sock:is_closed())
      assert.is_true(seen_sock:close_finished(0))
      local data = received:wait(helper.t(2))
      assert.equal("before-error", data)
    end)
  end)

  it("re-raises a non-string error value from f", function()
    helper.run(function()
      local _, port = recording_server()
      local value = { tag = "mine" }
      local seen_sock
      local ok, err = pcall(tcp.with_connection, helper.to(port), function(sock)
        seen_sock = sock
        error(value)
      end)
      assert.is_false(ok)
      assert.equal(value, err)
      assert.is_true(seen_sock:is_closed())
    end)
  end)

  it("returns nil, err, code without calling f when the connect fails", function()
    helper.run(function()
      local server, port = helper.server(function() end)
      server:close()
      assert.is_true(server:close_finished():wait(helper.t(2)))
      local called = false
      local results = table.pack(tcp.with_connection(helper.to(port), function() called = true end))
      assert.is_false(called)
      assert.is_nil(results[1])
      assert.is_true(errors.is(results[2], "ECONNREFUSED"))
      assert.equal("refused", results[2].kind)
      assert.equal("ECONNREFUSED", results[3])
    end)
  end)

  it("returns cancelled without calling f when the interrupt is already determined", function()
    helper.run(function()
      local _, port = recording_server()
      local called = false
      local sock, err, code = tcp.with_connection(helper.to(port), function() called = true end,
        { interrupt = coronet.deferred.of() })
      assert.is_false(called)
      assert.is_nil(sock)
      assert.equal("cancelled", code)
      assert.is_true(errors.is(err, "cancelled"))
    end)
  end)

  it("a DNS failure under .invalid returns an EAI_ code", function()
    helper.run(function()
      local called = false
      local r1, err, code = tcp.with_connection(
        tcp.Where_to_connect.of_host_and_port("nothing-here.invalid", 9), function() called = true end,
        { timeout = helper.t(8) })
      assert.is_false(called)
      assert.is_nil(r1)
      assert.equal("EAI_", code:sub(1, 4))
      assert.is_true(errors.is(err, code))
    end, 15)
  end)

  it("passes buffer options through to the connection", function()
    helper.run(function()
      local _, port = recording_server()
      local cap, hwm = tcp.with_connection(helper.to(port), function(_, r, w)
        return r:capacity(), w:hwm()
      end, { reader_buffer_size = 1000, writer_buffer_size = 2000 })
      assert.equal(1000, cap)
      assert.equal(2000, hwm)
    end)
  end)

  it("the peer sees EOF once with_connection returns", function()
    helper.run(function()
      local _, port, received = recording_server()
      tcp.with_connection(helper.to(port), function(_, r) assert.equal("hello", r:read_line()) end)
      local data, code = received:wait(helper.t(2))
      assert.equal("", data)
      assert.is_nil(code)
    end)
  end)

  it("f closing the socket itself is fine", function()
    helper.run(function()
      local _, port, received = recording_server()
      local v = tcp.with_connection(helper.to(port), function(sock, _, w)
        w:write("x")
        sock:close()
        return "closed-early"
      end)
      assert.equal("closed-early", v)
      assert.equal("x", (received:wait(helper.t(2))))
    end)
  end)

  it("a bounded close_timeout ends the close when the peer never reads", function()
    helper.run(function()
      local release = coronet.ivar()
      local _, port = helper.server(function()
        release.deferred:wait() -- never reads
      end)
      local seen_sock
      local t0 = coronet.now()
      local v = tcp.with_connection(helper.to(port), function(sock, _, w)
        seen_sock = sock
        -- far more than the socket buffers hold; write returns at once below the mark
        w:write(string.rep("z", 32 * 1024 * 1024))
        return "returned"
      end, { writer_buffer_size = 64 * 1024 * 1024, close_timeout = helper.t(0.3) })
      local elapsed = coronet.now() - t0
      assert.equal("returned", v)
      assert.is_true(seen_sock:is_closed())
      assert.is_true(elapsed >= helper.t(0.25), "elapsed " .. elapsed)
      assert.is_true(elapsed < helper.t(4), "elapsed " .. elapsed)
      release:fill()
    end)
  end)
end)
