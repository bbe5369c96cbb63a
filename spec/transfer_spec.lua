-- spec/transfer_spec.lua: reader:transfer_to(writer[, opts]), the C-side
-- copy from one connection to another (Async's Reader.transfer, Eio's
-- Flow.copy): every byte until EOF, back-pressure both ways, the writer shut
-- down at the end, cancel and closes from other fibers mid-transfer.
local coronet = require "coronet"
local helper = require "helper"

local t = helper.t
local failed_with = helper.failed_with

-- Small under GC stress (a collection per allocation), large enough otherwise
-- for many chunks and a kernel buffer that fills.
local MiB = 1024 * 1024
local big = helper.gc_stress and 256 * 1024 or 8 * MiB
-- More than the kernel's buffers on both hops of a transfer hold.
local flood = 40 * MiB

-- A server whose connections are handed over as { sock, r, w } through
-- accepted(); each handler stays until finish(). connect() makes a client
-- and returns its socket, reader, writer and the server's side of it.
local function hub(server_opts)
  local queue, done = {}, coronet.ivar()
  local server, port = helper.server(function(_, r, w)
    queue[#queue + 1] = { sock = r:socket(), r = r, w = w }
    done.deferred:wait()
  end, server_opts)
  local clients, sides = {}, {}
  local h = {}
  function h.connect(opts)
    local sock, r, w = helper.connect(port, opts)
    assert(helper.eventually(function() return #queue > #sides end), "no accept")
    local side = queue[#sides + 1]
    clients[#clients + 1], sides[#sides + 1] = sock, side
    return sock, r, w, side
  end
  function h.finish()
    done:fill()
    for _, s in ipairs(clients) do s:close() end
    for _, s in ipairs(sides) do s.sock:close() end
    helper.await(server:close())
    for _, s in ipairs(clients) do assert(s:close_finished(t(2))) end
  end
  return h
end

-- A deterministic pattern of n bytes, not a repetition of one byte.
local function pattern(n)
  local unit = {}
  for i = 0, 255 do unit[#unit + 1] = string.char((i * 7 + 3) % 256) end
  local block = table.concat(unit):rep(64) -- 16 KiB
  return block:rep(n // #block + 1):sub(1, n)
end

-- Runs fn(...) in a fiber; returns a function giving its results once done.
local function in_fiber(fn, ...)
  local args = table.pack(...)
  local done = coronet.ivar()
  local fiber = coronet.spawn(function() done:fill(table.pack(fn(table.unpack(args, 1, args.n)))) end)
  return function(limit)
    helper.await(done.deferred, limit)
    local r = done.deferred:peek()
    return table.unpack(r, 1, r.n)
  end, fiber, done.deferred
end

describe("reader:transfer_to", function()
  it("moves every byte to the writer until EOF, returns the count and shuts the writer down", function()
    helper.run(function()
      local h = hub()
      local _, _, src_w, src = h.connect()
      local _, dst_r, _, dst = h.connect({ reader_buffer_size = 64 * MiB })
      local data = pattern(big)
      local result = in_fiber(function() return src.r:transfer_to(dst.w) end)
      local got = in_fiber(function() return dst_r:contents({ timeout = t(5) }) end)
      assert(src_w:write(data))
      src_w:close() -- EOF for the transfer
      assert.equal(#data, result(5))
      local received = got(5)
      assert.equal(#data, #received)
      assert.is_true(received == data, "the bytes differ")
      assert.is_true(dst.w:is_closed())
      assert.is_false(src.r:is_closed()) -- the reader side is left open
      h.finish()
    end, 30)
  end)

  it("with close_writer = false leaves the writer open after EOF", function()
    helper.run(function()
      local h = hub({ reader_buffer_size = 16 * 1024 * 1024 })
      local _, _, src_w, src = h.connect()
      local _, dst_r, _, dst = h.connect()
      assert(src_w:write("abc"))
      src_w:close()
      assert.equal(3, src.r:transfer_to(dst.w, { close_writer = false }))
      assert(dst.w:write("def"))
      assert.equal("abcdef", dst_r:really_read(6, { timeout = t(2) }))
      h.finish()
    end)
  end)

  it("moves what is already buffered, and zero bytes at once when EOF came first", function()
    helper.run(function()
      local h = hub()
      local _, _, src_w, src = h.connect()
      local _, dst_r, _, dst = h.connect()
      src_w:close()
      assert(helper.eventually(function() return src.r:at_eof() end))
      assert.equal(0, src.r:transfer_to(dst.w))
      failed_with("closed", dst_r:read({ timeout = t(2) }))
      h.finish()
    end)
  end)

  it("holds at most the writer's mark plus one chunk when the writer's peer never reads, and resumes when it does", function()
    helper.run(function()
      local h = hub({ reader_buffer_size = 16 * 1024 })
      local _, _, src_w, src = h.connect({ writer_buffer_size = 1024 * 1024 * 1024 })
      -- the writer's peer reads nothing yet: its reader stops at a small cap
      local _, dst_r, _, dst = h.connect({ reader_buffer_size = 16 * 1024 })
      dst.sock:configure({ writer_buffer_size = 32 * 1024 })
      local bound = dst.w:hwm() + src.r:capacity()
      local total = flood
      local peak, moving = 0, true
      local sampler = coronet.spawn(function()
        while moving and not dst.w:is_closed() do
          peak = math.max(peak, dst.w:pending())
          coronet.sleep(0.001)
        end
      end)
      local result = in_fiber(function() return src.r:transfer_to(dst.w) end)
      assert(src_w:write(pattern(total)))
      -- the sender is held back: the kernel's buffers fill and its writer keeps bytes
      assert(helper.eventually(function() return src_w:pending() > 0 and dst.w:pending() > dst.w:hwm() end, 5))
      coronet.sleep(t(0.1))
      assert.is_true(src_w:pending() > 0, "the transfer read on past the writer's mark")
      assert.is_true(dst.w:pending() <= bound, dst.w:pending() .. " pending > " .. bound)
      src_w:close()
      local received = in_fiber(function()
        local n = 0
        repeat
          local chunk = dst_r:read({ timeout = t(10) })
          n = n + (chunk and #chunk or 0)
        until not chunk
        return n
      end)
      assert.equal(total, result(20))
      assert.equal(total, received(20))
      moving = false
      sampler:join()
      assert.is_true(peak <= bound, peak .. " pending at peak > " .. bound)
      h.finish()
    end, 60)
  end)

  it("on cancel returns nil, err, 'cancelled' and the count moved so far", function()
    helper.run(function()
      local h = hub()
      local _, _, src_w, src = h.connect()
      local _, dst_r, _, dst = h.connect()
      local result, fiber = in_fiber(function() return src.r:transfer_to(dst.w) end)
      assert(src_w:write("12345"))
      assert.equal("12345", dst_r:really_read(5, { timeout = t(2) }))
      fiber:cancel()
      local n, err, code, moved = result()
      failed_with("cancelled", n, err, code)
      assert.equal(5, moved)
      assert.is_false(dst.w:is_closed()) -- no EOF: nothing shut down
      -- the reader is free again: a later transfer goes on
      local again = in_fiber(function() return src.r:transfer_to(dst.w) end)
      assert(src_w:write("678"))
      src_w:close()
      assert.equal(3, again())
      assert.equal("678", dst_r:contents({ timeout = t(2) }))
      h.finish()
    end)
  end)

  it("fails 'closed' with the count when another fiber closes the reader's socket mid-transfer", function()
    helper.run(function()
      local h = hub()
      local _, _, src_w, src = h.connect()
      local _, dst_r, _, dst = h.connect()
      local result = in_fiber(function() return src.r:transfer_to(dst.w) end)
      assert(src_w:write("abc"))
      assert.equal("abc", dst_r:really_read(3, { timeout = t(2) }))
      src.sock:close()
      local n, err, code, moved = result()
      failed_with("closed", n, err, code)
      assert.equal(3, moved)
      h.finish()
    end)
  end)

  it("fails 'closed' when another fiber closes the reader itself mid-transfer", function()
    helper.run(function()
      local h = hub()
      local _, _, _, src = h.connect()
      local _, _, _, dst = h.connect()
      local result = in_fiber(function() return src.r:transfer_to(dst.w) end)
      coronet.sleep(0.01)
      src.r:close()
      local n, err, code, moved = result()
      failed_with("closed", n, err, code)
      assert.equal(0, moved)
      h.finish()
    end)
  end)

  it("fails 'closed' when the writer's socket closes while the transfer waits for room", function()
    helper.run(function()
      local h = hub()
      local _, _, src_w, src = h.connect({ writer_buffer_size = 1024 * 1024 * 1024 })
      local _, _, _, dst = h.connect({ reader_buffer_size = 16 * 1024 })
      local result, _, finished = in_fiber(function() return src.r:transfer_to(dst.w) end)
      assert(src_w:write(pattern(flood)))
      assert(helper.eventually(function() return dst.w:pending() > dst.w:hwm() end, 5))
      assert.is_false(finished:is_determined())
      dst.sock:close()
      local n, err, code, moved = result()
      failed_with("closed", n, err, code)
      assert.is_true(moved > dst.w:hwm())
      assert.is_true(coronet.errors.is(err, "closed"))
      h.finish()
    end, 30)
  end)

  it("fails 'closed' when the writer's socket closed while it waited for bytes, once they come", function()
    helper.run(function()
      local h = hub()
      local _, _, src_w, src = h.connect()
      local _, _, _, dst = h.connect()
      local result, _, finished = in_fiber(function() return src.r:transfer_to(dst.w) end)
      coronet.sleep(0.01)
      dst.sock:close()
      coronet.sleep(0.01)
      assert.is_false(finished:is_determined())
      assert(src_w:write("late"))
      local n, err, code, moved = result()
      failed_with("closed", n, err, code)
      assert.equal(0, moved)
      assert.equal("late", src.r:try_read()) -- bytes it could not move stay in the reader
      h.finish()
    end)
  end)

  it("fails with the reader's error after moving what was buffered when the source resets", function()
    helper.run(function()
      local h = hub()
      local src_sock, _, src_w, src = h.connect()
      local _, dst_r, _, dst = h.connect()
      local result = in_fiber(function() return src.r:transfer_to(dst.w) end)
      assert(src_w:write("xyz"))
      assert.equal("xyz", dst_r:really_read(3, { timeout = t(2) }))
      src_sock:abort()
      local n, err, code, moved = result()
      assert.is_nil(n)
      assert.equal("ECONNRESET", code, tostring(err))
      assert.equal(3, moved)
      assert.is_false(dst.w:is_closed()) -- only EOF shuts the writer down
      h.finish()
    end)
  end)

  it("echoes when a socket's reader transfers to its own writer", function()
    helper.run(function()
      local _, port = helper.server(function(_, r, w) r:transfer_to(w) end)
      local sock, r, w = helper.connect(port, { reader_buffer_size = MiB })
      local data = pattern(256 * 1024)
      local got = in_fiber(function() return r:contents({ timeout = t(5) }) end)
      assert(w:write(data))
      w:close()
      assert.is_true(got(5) == data)
      sock:close()
    end)
  end)

  it("answers 'busy' with a count of 0 while another fiber reads, and moves nothing", function()
    helper.run(function()
      local h = hub()
      local _, _, src_w, src = h.connect()
      local _, _, _, dst = h.connect()
      local line = in_fiber(function() return src.r:read_line({ timeout = t(2) }) end)
      coronet.sleep(0.01)
      local n, err, code, moved = src.r:transfer_to(dst.w)
      failed_with("busy", n, err, code)
      assert.equal(0, moved)
      assert(src_w:write("line\n"))
      assert.equal("line", line())
      h.finish()
    end)
  end)

  it("raises on misuse, naming transfer_to", function()
    helper.run(function()
      local h = hub()
      local _, _, _, src = h.connect()
      local _, _, _, dst = h.connect()
      assert.has_error(function() src.r:transfer_to("nope") end)
      assert.has_error(function() src.r:transfer_to(src.r) end)
      local ok, msg = pcall(src.r.transfer_to, src.r, dst.w, { close_writer = "yes" })
      assert.is_false(ok)
      assert.matches("transfer_to", msg)
      assert.matches("close_writer", msg)
      assert.has_error(function() src.r:transfer_to(dst.w, 5) end)
      -- outside a fiber it raises before moving anything
      local co = coroutine.create(function() return src.r:transfer_to(dst.w) end)
      local ok2, msg2 = coroutine.resume(co)
      assert.is_false(ok2)
      assert.matches("spawn", msg2)
      local other = hub()
      local _, _, _, closed_side = other.connect()
      closed_side.w:close()
      local ok3, msg3 = pcall(src.r.transfer_to, src.r, closed_side.w)
      assert.is_false(ok3)
      assert.matches("writer is closed", msg3)
      closed_side.r:close()
      local ok4, msg4 = pcall(closed_side.r.transfer_to, closed_side.r, dst.w)
      assert.is_false(ok4)
      assert.matches("reader is closed", msg4)
      other.finish()
      h.finish()
    end)
  end)

  it("survives collections of everything but the transferring fiber's own stack", function()
    helper.run(function()
      local h = hub()
      local _, _, src_w, src = h.connect()
      local _, dst_r, _, dst = h.connect()
      -- only the fiber holds the halves it transfers between
      local r, w = src.r, dst.w
      src.r, dst.w = nil, nil
      local result = in_fiber(function(from, to) return from:transfer_to(to) end, r, w)
      r, w = nil, nil -- the fiber's stack holds them now
      local got = in_fiber(function() return dst_r:contents({ timeout = t(5) }) end)
      for i = 1, 20 do
        collectgarbage()
        assert(src_w:write(("%04d"):format(i)))
        coronet.sleep(0.001)
      end
      src_w:close()
      collectgarbage()
      assert.equal(80, result(5))
      assert.equal(80, #got(5))
      h.finish()
    end)
  end)
end)

-- Everything r reads until EOF, in a fiber; returns a function giving it.
local function drained(r)
  return in_fiber(function()
    local parts = {}
    repeat
      local chunk = r:read({ timeout = t(10) })
      parts[#parts + 1] = chunk
    until not chunk
    return table.concat(parts)
  end)
end

-- The transfer runs in a core pump: the fiber waits once, for the end.
describe("reader:transfer_to as a core pump", function()
  it("ends without a yield when the bytes and EOF are already buffered", function()
    helper.run(function()
      local h = hub()
      local _, _, src_w, src = h.connect()
      local _, dst_r, _, dst = h.connect()
      assert(src_w:write("abcdef"))
      src_w:close()
      assert(helper.eventually(function() return src.r:buffered() == 6 end))
      coronet.sleep(t(0.05)) -- the EOF behind the bytes arrives too
      local ran = false
      coronet.spawn(function() ran = true end)
      assert.equal(6, src.r:transfer_to(dst.w, { close_writer = false }))
      assert.is_false(ran, "the transfer yielded")
      assert.is_false(dst.w:is_closed())
      assert.equal("abcdef", dst_r:really_read(6, { timeout = t(2) }))
      h.finish()
    end)
  end)

  it("on cancel while it waits for room, frees the writer: a new transfer to it goes on once the peer reads", function()
    helper.run(function()
      local h = hub({ reader_buffer_size = 16 * 1024 })
      local _, _, src_w, src = h.connect({ writer_buffer_size = 1024 * 1024 * 1024 })
      local _, dst_r, _, dst = h.connect({ reader_buffer_size = 16 * 1024 })
      dst.sock:configure({ writer_buffer_size = 32 * 1024 })
      local result, fiber = in_fiber(function() return src.r:transfer_to(dst.w) end)
      local total = flood
      assert(src_w:write(pattern(total)))
      assert(helper.eventually(function() return dst.w:pending() > dst.w:hwm() end, 5))
      fiber:cancel()
      local n, err, code, moved = result()
      failed_with("cancelled", n, err, code)
      assert.is_true(moved > 0)
      assert.is_false(dst.w:is_closed())
      local received = drained(dst_r)
      -- no wait for room is left behind: this write is not "busy"
      assert.is_true(dst.w:write("x"))
      local again = in_fiber(function() return src.r:transfer_to(dst.w) end)
      src_w:close()
      local rest = again(20)
      assert.equal(total, moved + rest)
      assert.equal(total + 1, #received(20))
      h.finish()
    end, 60)
  end)

  it("refuses a stray coroutine.resume of the transferring fiber; the transfer goes on to its count", function()
    helper.run(function()
      local h = hub()
      local _, _, src_w, src = h.connect()
      local _, dst_r, _, dst = h.connect()
      local co
      local result = in_fiber(function()
        co = coroutine.running()
        return src.r:transfer_to(dst.w)
      end)
      assert(src_w:write("one"))
      assert.equal("one", dst_r:really_read(3, { timeout = t(2) }))
      local resumed, value, err = coroutine.resume(co, "stray")
      assert.is_true(resumed)
      assert.is_nil(value)
      assert.matches("stray coroutine.resume", tostring(err), 1, true)
      assert(src_w:write("two"))
      src_w:close()
      assert.equal(6, result(5))
      assert.equal("two", dst_r:contents({ timeout = t(2) }))
      h.finish()
    end)
  end)

  it("carries both directions of a chain at once (a -> b and b -> a in two fibers)", function()
    helper.run(function()
      local h = hub()
      local _, a_r, a_w, a = h.connect()
      local _, b_r, b_w, b = h.connect()
      local there = in_fiber(function() return a.r:transfer_to(b.w) end)
      local back = in_fiber(function() return b.r:transfer_to(a.w) end)
      local data = pattern(big)
      local got_b, got_a = drained(b_r), drained(a_r)
      assert(a_w:write(data))
      assert(b_w:write(data:reverse()))
      a_w:close()
      b_w:close()
      assert.equal(big, there(20))
      assert.equal(big, back(20))
      assert.is_true(got_b(20) == data)
      assert.is_true(got_a(20) == data:reverse())
      h.finish()
    end, 60)
  end)

  it("lets a Lua state close (os.exit) with transfers in flight, waiting for bytes and for room", function()
    local out, status = helper.child([[
      local coronet = require "coronet"
      local tcp = coronet.tcp
      coronet.run(function()
        local sides = {}
        local server = assert(tcp.Server.create(tcp.Where_to_listen.on_port(0), function(_, r, w)
          sides[#sides + 1] = { r = r, w = w }
          coronet.sleep(60)
        end, { reader_buffer_size = 16384 }))
        local where = tcp.Where_to_connect.of_host_and_port("127.0.0.1", server:listening_on())
        local clients = {}
        for i = 1, 4 do clients[i] = { assert(tcp.connect(where)) } end
        while #sides < 4 do coronet.sleep(0.005) end
        sides[4].w:socket():configure({ writer_buffer_size = 16384 })
        coronet.spawn(function() sides[1].r:transfer_to(sides[2].w) end) -- waits for bytes
        coronet.spawn(function() sides[3].r:transfer_to(sides[4].w) end) -- will wait for room
        coronet.spawn(function() clients[3][3]:write(string.rep("z", 8 * 1024 * 1024)) end)
        coronet.sleep(0.2)
        print("closing")
        io.stdout:flush()
        os.exit(0, true)
      end)
      print("not reached")
    ]])
    assert.is_truthy(out:find("closing"), out)
    assert.is_falsy(out:find("not reached"), out)
    assert.are.equal(0, status, out)
  end)
end)
