-- spec/io_contract_spec.lua: the reader, writer, socket and address contract
-- at its edges (issue 7): "busy" changes nothing, a cap fails only when
-- passed, a failed write takes nothing, close wakes waiters with "closed",
-- use after close answers "closed", misuse raises naming the option.
local coronet = require "coronet"
local helper = require "helper"
local errors = coronet.errors

local pair = helper.pair

-- A server that sends `data` and closes.
local function sends(data, client_opts)
  return pair(function(_, w) w:write(data) end, client_opts)
end

local function failed_with(code, ...)
  local value, err, got = ...
  assert.is_nil(value)
  assert.equal(code, got)
  assert.is_true(errors.is(err, code))
end

describe("reader: busy changes nothing", function()
  it("receive while another fiber reads returns busy and leaves the partial bytes to the first reader", function()
    helper.run(function()
      local go = coronet.ivar()
      local _, r = pair(function(_, w)
        w:write("start-")
        w:flush()
        go.deferred:wait()
        w:write("end\n")
      end)
      assert.equal("s", r:peek(1)) -- "start-" is buffered
      local first = coronet.spawn(function() return r:read_line({ timeout = helper.t(3) }) end)
      coronet.sleep(helper.t(0.02))
      local v, err, partial = r:receive("*l")
      assert.is_nil(v)
      assert.equal("busy", err)
      assert.equal("", partial)
      v, err, partial = r:receive(2, "pre-")
      assert.is_nil(v)
      assert.equal("busy", err)
      assert.equal("pre-", partial)
      failed_with("busy", r:read(1)) -- even when the buffer could serve it
      failed_with("busy", r:peek(1))
      go:fill()
      assert.equal("start-end", first:join(helper.t(3)))
    end)
  end)
end)

describe("reader: a cap fails only when passed", function()
  it("contents() and receive('*a') return exactly reader_buffer_size bytes from a peer that sent the cap and closed", function()
    helper.run(function()
      local body = string.rep("c", 128)
      local _, r = sends(body, { reader_buffer_size = 128 })
      assert.equal(body, r:contents())
      local _, r2 = sends(body, { reader_buffer_size = 128 })
      assert.equal(body, r2:receive("*a"))
    end)
  end)

  it("one byte past the cap still fails with line_too_long, keeping the bytes", function()
    helper.run(function()
      local body = string.rep("c", 129)
      local _, r = sends(body, { reader_buffer_size = 128 })
      failed_with("line_too_long", r:contents())
      assert.equal(body, r:really_read(129))
    end)
  end)

  it("a line of cap bytes ends in \\n or in \\r\\n alike; cap + 1 bytes are too long (the terminator never counts)", function()
    helper.run(function()
      local line = string.rep("l", 128)
      local _, r = sends(line .. "\r\n" .. line .. "\n" .. line .. "\r\n" .. line .. "l\r\n", { reader_buffer_size = 128 })
      assert.equal(line, r:read_line())
      assert.equal(line, r:read_line())
      assert.equal(line, r:receive("*l"))
      failed_with("line_too_long", r:read_line())
      assert.same({ nil, "line_too_long", "" }, { r:receive("*l") })
      assert.equal(line .. "l\r\n", r:really_read(131)) -- the bytes stay
    end)
  end)

  it("read_until: cap bytes before a delimiter of any length pass; cap + 1 fail (the delimiter never counts)", function()
    helper.run(function()
      local body = string.rep("d", 128)
      local _, r = sends(body .. "--END--" .. body .. "d--END--", { reader_buffer_size = 128 })
      assert.equal(body, r:read_until("--END--"))
      failed_with("line_too_long", r:read_until("--END--"))
      assert.equal(body .. "d--END--", r:really_read(136)) -- the bytes stay
    end)
  end)

  it("past the cap fails at once, without waiting for bytes that cannot help", function()
    helper.run(function()
      local hold = coronet.ivar()
      local _, r = pair(function(_, w)
        w:write(string.rep("x", 129))
        hold.deferred:wait()
      end, { reader_buffer_size = 128 })
      assert.equal(129, #r:peek(129))
      failed_with("line_too_long", r:read_line(helper.t(2)))
      failed_with("line_too_long", r:read_until("\r\n", helper.t(2)))
      failed_with("line_too_long", r:read_until("yz", helper.t(2)))
      hold:fill()
    end)
  end)

  it("a possible delimiter start at the cap is waited for, not refused", function()
    helper.run(function()
      local _, r = pair(function(_, w)
        w:write(string.rep("x", 128) .. "-")
        w:flush()
        coronet.sleep(helper.t(0.05))
        w:write("-END")
      end, { reader_buffer_size = 128 })
      assert.equal(129, #r:peek(129))
      assert.equal(string.rep("x", 128), r:read_until("--END", helper.t(2)))
    end)
  end)

  it("receive(2.5) reads 2 bytes, as LuaSocket does", function()
    helper.run(function()
      local _, r = sends("abcdef")
      assert.equal("ab", r:receive(2.5))
      assert.equal("cde", r:receive(3.99))
    end)
  end)
end)

describe("use after close", function()
  it("getfd() and bind() after close return nil, err, \"closed\"", function()
    helper.run(function()
      local s = coronet.tcp.socket()
      assert.is_true(math.type(s:getfd()) == "integer" and s:getfd() >= 0)
      s:close()
      failed_with("closed", s:getfd())
      failed_with("closed", s:bind(coronet.address("127.0.0.1", 0)))
      s:close_finished()
    end)
  end)

  it("an address compared with another userdata is false, never an error", function()
    helper.run(function()
      local a = coronet.address("127.0.0.1", 80)
      local s = coronet.tcp.socket()
      assert.is_false(a == s)
      assert.is_false(s == a)
      assert.is_false(a == io.stdout)
      assert.is_true(a == coronet.address("127.0.0.1", 80))
      s:close()
    end)
  end)
end)

-- A client whose server reads nothing until release() is called (its
-- reader buffers at most 64 KiB ahead), then everything until EOF; returns
-- socket, writer, release and a deferred that gets (data, code).
local function gated_sink(client_opts)
  local gate, got = coronet.ivar(), coronet.ivar()
  local _, port = helper.server(function(_, r)
    gate.deferred:wait()
    local chunks = {}
    while true do
      local chunk, _, code = r:read()
      if not chunk then return got:fill(table.concat(chunks), code ~= "closed" and code or nil) end
      chunks[#chunks + 1] = chunk
    end
  end)
  local sock, _, w = helper.connect(port, client_opts)
  return sock, w, function() gate:fill() end, got.deferred
end

local BIG = 4 * 1024 * 1024 -- more than loopback's socket buffers take

-- Fills the kernel's buffers towards a peer that does not read, under a
-- mark high enough that no write waits, then lowers the mark to 1 KiB: the
-- pending bytes are past it and the next write must wait.
local function fill(sock, w)
  sock:configure({ writer_buffer_size = 1024 * 1024 * 1024 })
  for _ = 1, 32 do
    if w:pending() > 1024 then
      sock:configure({ writer_buffer_size = 1024 })
      return
    end
    assert(w:write(string.rep("b", BIG)))
  end
  error("the kernel took everything")
end

-- A fiber that fills the writer past its mark, then blocks in a write of "X"s.
local function blocked_in_write(sock, w)
  local f = coronet.spawn(function()
    fill(sock, w)
    return w:write(string.rep("X", 1000))
  end)
  coronet.sleep(helper.t(0.1))
  assert.is_false(f:is_done())
  return f
end

describe("writer: a failed write takes nothing", function()
  it("a write that returns busy sends none of its bytes", function()
    helper.run(function()
      local sock, w, release, got = gated_sink()
      local blocked = blocked_in_write(sock, w)
      failed_with("busy", w:write("second"))
      release()
      assert.is_true(blocked:join(helper.t(5)))
      w:close()
      local data = got:wait(helper.t(5))
      assert.is_nil(data:find("second", 1, true))
      assert.equal("X", data:sub(-1))
    end, 20)
  end)

  it("a cancelled write returns cancelled and none of its bytes are sent; retrying sends them once", function()
    helper.run(function()
      local sock, w, release, got = gated_sink()
      local blocked = blocked_in_write(sock, w)
      blocked:cancel()
      failed_with("cancelled", blocked:join(helper.t(2)))
      release()
      assert.is_true(w:write("retry"))
      w:close()
      local data = got:wait(helper.t(5))
      assert.is_nil(data:find("X", 1, true))
      assert.equal("retry", data:sub(-5))
    end, 20)
  end)

  it("a write that times out takes nothing", function()
    helper.run(function()
      local sock, w, release, got = gated_sink()
      sock:settimeouts(nil, helper.t(0.1), nil)
      fill(sock, w)
      failed_with("timeout", w:write("late"))
      release()
      sock:settimeouts(nil, false, nil)
      assert.is_true(w:flush(helper.t(5)))
      w:close()
      assert.is_nil(got:wait(helper.t(5)):find("late", 1, true))
    end, 20)
  end)

  it("a write with a bad argument raises before taking any byte", function()
    helper.run(function()
      local _, w, release, got = gated_sink()
      assert.has_error(function() w:write("first", true) end)
      assert.has_error(function() w:write("first", { "a", false }) end)
      assert.equal(0, w:pending())
      release()
      w:close()
      assert.equal("", (got:wait(helper.t(5))))
    end)
  end)
end)

describe("writer: close wakes waiters with closed", function()
  it("writer:close() while a fiber waits in write returns nil, err, \"closed\" to it", function()
    helper.run(function()
      local sock, w, release = gated_sink()
      local blocked = blocked_in_write(sock, w)
      w:close()
      failed_with("closed", blocked:join(helper.t(2)))
      release()
      sock:abort()
    end, 20)
  end)

  it("writer:close() while a fiber waits in flush returns nil, err, \"closed\" to it", function()
    helper.run(function()
      local sock, w, release = gated_sink()
      fill(sock, w)
      local flusher = coronet.spawn(function() return w:flush(helper.t(5)) end)
      coronet.sleep(helper.t(0.05))
      w:close()
      failed_with("closed", flusher:join(helper.t(2)))
      release()
      sock:abort()
    end, 20)
  end)

  it("w:flushed() then w:close(): the deferred is determined once the close flushed the bytes", function()
    helper.run(function()
      local _, w, release, got = gated_sink()
      w:write("abc")
      local d = w:flushed()
      w:close()
      release()
      assert.is_true(d:wait(helper.t(5)))
      assert.equal("abc", (got:wait(helper.t(5))))
    end)
  end)
end)

describe("writer: flush tells the truth after a close", function()
  it("an abort that dropped queued bytes makes flush and flushed fail with closed, before and after the descriptor closed", function()
    helper.run(function()
      local sock, w, release = gated_sink()
      fill(sock, w)
      sock:abort()
      failed_with("closed", w:flush(helper.t(2)))
      assert.is_true(sock:close_finished(helper.t(2)))
      failed_with("closed", w:flush(helper.t(2)))
      failed_with("closed", w:flushed():wait(helper.t(2)))
      release()
    end, 20)
  end)

  it("writer:close() then an abort before the final flush ended: flush fails with closed", function()
    helper.run(function()
      local sock, w, release = gated_sink()
      fill(sock, w)
      w:close()
      sock:abort()
      assert.is_true(sock:close_finished(helper.t(2)))
      failed_with("closed", w:flush(helper.t(2)))
      failed_with("closed", w:flushed():wait(helper.t(2)))
      release()
    end, 20)
  end)

  it("a final flush cut by close_timeout makes a later flush fail with timeout", function()
    helper.run(function()
      local sock, w, release = gated_sink()
      fill(sock, w)
      sock:configure({ close_timeout = helper.t(0.1) })
      sock:close()
      assert.is_true(sock:close_finished(helper.t(3)))
      failed_with("timeout", w:flush(helper.t(2)))
      release()
    end, 20)
  end)

  it("a final flush that completed keeps flush true after the descriptor closed", function()
    helper.run(function()
      local sock, w, release, got = gated_sink()
      w:write("abc")
      sock:close()
      release()
      assert.equal("abc", (got:wait(helper.t(5))))
      assert.is_true(sock:close_finished(helper.t(2)))
      assert.is_true(w:flush(helper.t(2)))
      assert.is_true(w:flushed():wait(helper.t(2)))
    end)
  end)

  it("an abort with nothing queued drops nothing: flush stays true", function()
    helper.run(function()
      local sock, w, release, got = gated_sink()
      w:write("abc")
      assert.is_true(w:flush(helper.t(2)))
      sock:abort()
      assert.is_true(sock:close_finished(helper.t(2)))
      assert.is_true(w:flush(helper.t(2)))
      assert.is_true(w:is_closed())
      release()
      got:wait(helper.t(5))
    end)
  end)
end)

describe("socket:configure keeps what it is not given", function()
  it("configure without buffer_age_limit keeps the limit set before", function()
    helper.run(function()
      local sock, w, release = gated_sink()
      sock:configure({ buffer_age_limit = helper.t(0.1) })
      sock:configure({ writer_buffer_size = 1024 * 1024 * 1024 }) -- no buffer_age_limit: kept
      assert(w:write(string.rep("a", BIG)))
      failed_with("stalled", w:flush(helper.t(3)))
      release()
    end, 20)
  end)

  it("buffer_age_limit = math.huge (or \"unlimited\" in tcp.connect) turns the limit off", function()
    helper.run(function()
      local sock, w, release = gated_sink({ buffer_age_limit = "unlimited" })
      sock:configure({ buffer_age_limit = helper.t(0.05) })
      sock:configure({ buffer_age_limit = math.huge })
      assert(w:write(string.rep("a", BIG)))
      failed_with("timeout", w:flush(helper.t(0.3)))
      release()
      assert.is_true(w:flush(helper.t(5)))
    end, 20)
  end)
end)

describe("option validation", function()
  local bad_stream_options = {
    { reader_buffer_size = -1 }, { reader_buffer_size = 0 }, { reader_buffer_size = 1.5 },
    { reader_buffer_size = "64" }, { reader_buffer_size = 0 / 0 },
    { writer_buffer_size = -1 }, { writer_buffer_size = 0 },
    { close_timeout = -1 }, { close_timeout = 0 / 0 }, { close_timeout = "5" },
    { buffer_age_limit = -1 }, { buffer_age_limit = 0 }, { buffer_age_limit = "soon" }, { buffer_age_limit = 0 / 0 },
  }
  local bad_server_options = {
    { max_connections = -1 }, { max_connections = 0 }, { max_connections = 1.5 }, { max_connections = 1 << 40 },
    { backlog = -1 }, { max_accepts_per_batch = -1 }, { max_accepts_per_batch = 0 },
  }

  local function raises_naming(fn_name, opts, f)
    local option = next(opts)
    local ok, err = pcall(f)
    assert.is_false(ok, fn_name .. " accepted " .. option .. " = " .. tostring(opts[option]))
    err = tostring(err)
    assert.truthy(err:find(fn_name, 1, true), err)
    assert.truthy(err:find("'" .. option .. "'", 1, true), err)
  end

  it("tcp.connect, tcp.Server.create and socket:configure raise naming themselves and the option", function()
    helper.run(function()
      local sock, _, _ = sends("")
      local where = coronet.tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0))
      local _, port = helper.server(function() end)
      for _, opts in ipairs(bad_stream_options) do
        raises_naming("socket:configure", opts, function() sock:configure(opts) end)
        raises_naming("tcp.connect", opts, function() coronet.tcp.connect(helper.to(port), opts) end)
        raises_naming("tcp.Server.create", opts, function() coronet.tcp.Server.create(where, function() end, opts) end)
      end
      for _, opts in ipairs(bad_server_options) do
        raises_naming("tcp.Server.create", opts, function() coronet.tcp.Server.create(where, function() end, opts) end)
      end
      sock:close()
    end)
  end)

  it("buffer_age_limit = 1e-9 is the shortest limit (1 ms), not \"off\"", function()
    helper.run(function()
      local sock, w, release = gated_sink()
      sock:configure({ buffer_age_limit = 1e-9 })
      assert(w:write(string.rep("a", BIG)))
      coronet.sleep(helper.t(0.1))
      failed_with("stalled", w:flush(helper.t(2)))
      release()
    end)
  end)

  it("close_timeout = 0 bounds the final flush to at most a moment, not the 5 s default", function()
    helper.run(function()
      local sock, w, release = gated_sink()
      sock:configure({ close_timeout = 0 })
      fill(sock, w)
      local t0 = coronet.now()
      sock:close()
      assert.is_true(sock:close_finished(helper.t(3)))
      assert.is_true(coronet.now() - t0 < helper.t(1))
      release()
    end)
  end)

  it("huge timeouts are accepted as unbounded, without overflow", function()
    helper.run(function()
      local sock = sends("")
      sock:configure({ close_timeout = math.huge, buffer_age_limit = 1e300 })
      sock:close()
    end)
  end)
end)
