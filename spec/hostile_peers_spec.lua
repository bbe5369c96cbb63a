-- spec/hostile_peers_spec.lua: peers that misbehave on purpose, on loopback.
-- The client side of the line cap, a trickling peer, max_connections = 1,
-- buffer_age_limit and EMFILE caused by the server's own clients are specced
-- in reader_spec, tcp_server_spec and writer_spec; here the server faces a
-- huge line, slowloris, thousands of silent clients, half-closes, resets, a
-- reader that never reads, a flood and EMFILE from outside. Raw peers are
-- LuaSocket (Debian's lua-socket): a client no one here wrote, whose
-- blocking calls are used only where the kernel completes them at once, and
-- polled with coronet.sleep otherwise.
local coronet = require "coronet"
local helper = require "helper"
local socket = require "socket"

local t = helper.t

-- A LuaSocket client connected to 127.0.0.1:port (the kernel completes the
-- handshake from the listen queue, so this does not need the loop).
local function raw_client(port)
  local s = assert(socket.tcp())
  s:settimeout(t(2))
  assert(s:connect("127.0.0.1", port))
  s:settimeout(0)
  return s
end

-- Closing with SO_LINGER 0 sends RST instead of FIN.
local function reset(s)
  assert(s:setoption("linger", { on = true, timeout = 0 }))
  s:close()
end

-- LuaSocket's receive(pattern), polled without blocking the loop. Returns the
-- data, or nil, "closed"|"timeout", and what had arrived.
local function raw_receive(s, pattern, limit)
  local deadline = coronet.now() + t(limit or 3)
  local acc = ""
  while true do
    local data, err, partial = s:receive(pattern, acc)
    if data then return data end
    acc = partial or acc
    if err ~= "timeout" then return nil, err, acc end
    if coronet.now() > deadline then return nil, "timeout", acc end
    coronet.sleep(0.005)
  end
end

-- A handler that echoes lines until EOF or an error, never raising.
local function quiet_echo(_, reader, writer)
  while true do
    local line = reader:read_line()
    if not line or not writer:write(line, "\n") then return end
  end
end

-- A handler that answers assert_still_serving's probe, and runs
-- hostile(first_line, reader, writer) for every other client.
local function or_probe(hostile)
  return function(_, reader, writer)
    local first = reader:read_line()
    if first == "still there?" then
      writer:write(first, "\n")
      return quiet_echo(nil, reader, writer)
    end
    return hostile(first, reader, writer)
  end
end

-- Asserts that a fresh client gets an echoed line from port within `limit` s.
local function assert_still_serving(port, limit)
  local t0 = coronet.now()
  local sock, r, w = helper.connect(port)
  assert(w:write("still there?\n"))
  assert.are.equal("still there?", r:read_line({ timeout = t(limit or 2) }))
  sock:close()
  return coronet.now() - t0
end

-- The soft descriptor limit this process inherited (a child shell reports it).
local function fd_limit()
  local p = assert(io.popen("ulimit -n"))
  local out = p:read("l")
  p:close()
  if out == "unlimited" then return math.huge end
  return tonumber(out) or 1024
end

describe("hostile peers", function()
  it("a 10 MiB line fails with line_too_long, the stream stays usable and others are served meanwhile", function()
    helper.run(function()
      local outcome = coronet.ivar()
      local MiB = 1024 * 1024
      local server, port = helper.server(or_probe(function(_, reader)
        local line, _, code = reader:read_line()
        local cap, buffered = reader:capacity(), reader:buffered()
        -- Skip the long line through peek and really_read, then read on by lines.
        local skipped = 0
        while true do
          if reader:buffered() == 0 and not reader:peek(1) then break end
          local data = reader:peek(reader:buffered())
          local nl = data:find("\n", 1, true)
          assert(data:sub(1, (nl or 0) - 1):match("^x*$"))
          skipped = skipped + (nl and nl - 1 or #data)
          reader:really_read(nl or #data)
          if nl then break end
        end
        outcome:fill(line, code, cap, buffered, skipped, reader:read_line())
      end))
      local big = coronet.spawn(function()
        local sock, _, w = helper.connect(port)
        assert(w:write("hello\n"))
        local piece = string.rep("x", MiB)
        for _ = 1, 10 do assert(w:write(piece)) end
        assert(w:write("\nafter\n"))
        assert(w:flush(t(10)))
        return sock
      end)
      coronet.sleep(t(0.02))
      assert_still_serving(port)
      local line, code, cap, buffered, skipped, after = outcome.deferred:wait(t(20))
      assert.is_nil(line)
      assert.are.equal("line_too_long", code)
      assert.are.equal(64 * 1024, cap)
      assert.is_true(buffered >= cap and buffered < 4 * cap, "buffered " .. tostring(buffered))
      assert.are.equal(10 * MiB, skipped)
      assert.are.equal("after", after)
      assert(big:join(t(10))):close()
      helper.await(server:close())
    end, 40)
  end)

  it("slowloris clients are cut by the handler's per-call deadline while a normal client is served", function()
    helper.run(function()
      local timed_out = 0
      local server, port = helper.server(function(_, reader, writer)
        local line, _, code = reader:read_line({ timeout = t(0.3) })
        if not line then
          if code == "timeout" then timed_out = timed_out + 1 end
          return
        end
        writer:write(line, "\n")
      end)
      local lorises = {}
      for i = 1, 20 do
        lorises[i] = coronet.spawn(function()
          local sock, r, w = helper.connect(port)
          local sent = 0
          while sent < 100 do -- a byte every 20 ms: never a whole line
            if not w:write("z") or not w:flush(t(1)) then break end
            sent = sent + 1
            if r:buffered() > 0 or r:at_eof() then break end
            if not coronet.sleep(t(0.02)) then break end
          end
          local _, _, code = r:read({ timeout = t(2) })
          sock:close()
          return code
        end)
      end
      coronet.sleep(t(0.05))
      assert.is_true(assert_still_serving(port) < t(0.25), "a normal client waited behind the slow ones")
      for i = 1, 20 do
        local code = lorises[i]:join(t(5))
        assert.is_true(code == "closed" or code == "ECONNRESET", tostring(code))
      end
      assert.are.equal(20, timed_out)
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      helper.await(server:close())
    end, 20)
  end)

  it("2000 silent connections hold no handler up: a new client is served at once, and all are released", function()
    -- Both ends of each connection are ours: 2000 needs a limit above 4000
    -- (20000 on these machines); a lower one gets as many as fit.
    local N = math.min(2000, (fd_limit() - 200) // 2)
    local fds_before = helper.open_fds()
    helper.run(function()
      local server, port = helper.server(quiet_echo)
      local silent = {}
      for i = 1, N do
        silent[i] = assert(coronet.tcp.connect_sock(helper.to(port), { timeout = t(5) }))
      end
      assert.is_true(helper.eventually(function() return server:num_connections() == N end, 10))
      assert.is_true(assert_still_serving(port) < t(0.5))
      for i = 1, N do silent[i]:close() end
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end, 10))
      assert.are.equal(N + 1, server:stats().accepted)
      helper.await(server:close())
    end, 60)
    collectgarbage()
    assert.are.equal(fds_before, helper.open_fds())
  end)

  it("half-close: a client that shuts down its sending side still gets the whole reply", function()
    helper.run(function()
      local server, port = helper.server(function(_, reader, writer)
        local request = reader:contents() -- until the client's FIN
        for _ = 1, 100 do writer:write(request:upper(), "\n") end
      end)
      local s = raw_client(port)
      assert(s:send("ping"))
      assert(s:shutdown("send"))
      local reply = raw_receive(s, "*a")
      assert.are.equal(string.rep("PING\n", 100), reply)
      s:close()
      helper.await(server:close())
    end)
  end)

  it("half-close: after the server closes its writer, the client's requests still reach the reader", function()
    helper.run(function()
      local got = coronet.ivar()
      local server, port = helper.server(function(_, reader, writer)
        writer:write("bye\n")
        writer:close() -- FIN to the client; reading goes on
        local lines = {}
        for line in function() return reader:read_line() end do lines[#lines + 1] = line end
        got:fill(table.concat(lines, ","))
      end)
      local s = raw_client(port)
      assert.are.equal("bye", raw_receive(s, "*l"))
      local _, err = raw_receive(s, "*l")
      assert.are.equal("closed", err)
      assert(s:send("one\ntwo\nthree\n"))
      s:shutdown("send")
      assert.are.equal("one,two,three", got.deferred:wait(t(3)))
      s:close()
      helper.await(server:close())
    end)
  end)

  it("a reset in the middle of a line ends that read with an error code, not a raise; serving goes on", function()
    helper.run(function()
      local result = coronet.ivar()
      local reading = coronet.ivar()
      local server, port = helper.server(function(_, reader)
        reader:peek(3)
        reading:fill()
        result:fill(table.pack(reader:read_line({ timeout = t(3) })))
      end)
      local s = raw_client(port)
      assert(s:send("abc"))
      reading.deferred:wait(t(2))
      reset(s)
      local r = result.deferred:wait(t(3))
      assert.is_nil(r[1])
      assert.is_true(r[3] == "ECONNRESET" or r[3] == "closed", tostring(r[3]))
      assert.is_true(coronet.errors.is(r[2]))
      server:close()
      helper.await(server:close())
    end)
    helper.run(function() -- a reset before the handler reads at all
      local server, port = helper.server(quiet_echo)
      reset(raw_client(port))
      assert_still_serving(port)
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      helper.await(server:close())
    end)
  end)

  it("a reset while the server writes megabytes fails the write or flush with an error code", function()
    helper.run(function()
      local result = coronet.ivar()
      local server, port = helper.server(or_probe(function(_, _, writer)
        local piece = string.rep("w", 256 * 1024)
        for _ = 1, 64 do
          local ok, err, code = writer:write(piece)
          if not ok then return result:fill(err, code) end
        end
        result:fill(select(2, writer:flush(t(5))))
      end), { writer_buffer_size = 1024 * 1024 })
      local s = raw_client(port)
      assert(s:send("go\n"))
      local head = raw_receive(s, 100000)
      assert.are.equal(100000, #head)
      reset(s)
      local err, code = result.deferred:wait(t(5))
      assert.is_true(coronet.errors.is(err), tostring(err))
      assert.is_true(code == "ECONNRESET" or code == "EPIPE" or code == "closed", tostring(code))
      assert_still_serving(port)
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      helper.await(server:close())
    end, 20)
  end)

  it("a peer that never reads: the writer yields at its mark, then the age limit ends it with stalled", function()
    helper.run(function()
      local result = coronet.ivar()
      local max_pending = 0
      local server, port = helper.server(or_probe(function(_, _, writer)
        local piece = string.rep("p", 64 * 1024)
        while true do
          local ok, _, code = writer:write(piece)
          max_pending = math.max(max_pending, writer:pending())
          if not ok then return result:fill(code) end
        end
      end), { writer_buffer_size = 256 * 1024, buffer_age_limit = t(0.5) })
      local s = raw_client(port) -- never reads
      assert(s:send("go\n"))
      coronet.sleep(t(0.1))
      assert_still_serving(port)
      assert.are.equal("stalled", result.deferred:wait(t(5)))
      assert.is_true(max_pending <= 256 * 1024 + 64 * 1024, "pending grew to " .. max_pending)
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      s:close()
      helper.await(server:close())
    end, 15)
  end)

  it("a flood of 300 clients past max_connections = 10 is served in turn, never more than 10 at once", function()
    helper.run(function()
      local active, most = 0, 0
      local server, port = helper.server(function(_, reader, writer)
        active = active + 1
        most = math.max(most, active)
        local line = reader:read_line({ timeout = t(5) })
        coronet.sleep(0.001)
        if line then writer:write(line, "\n") end
        active = active - 1
      end, { max_connections = 10 })
      local clients = {}
      for i = 1, 300 do
        clients[i] = coronet.spawn(function()
          local sock, r, w = helper.connect(port, { timeout = t(10) })
          w:write("c", i, "\n")
          local line, _, code = r:read_line({ timeout = t(10) })
          sock:close()
          return line or code
        end)
      end
      for i = 1, 300 do assert.are.equal("c" .. i, clients[i]:join(t(15))) end
      assert.is_true(most <= 10, "handlers at once: " .. most)
      assert.are.equal(10, most)
      assert.are.equal(300, server:stats().accepted)
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      helper.await(server:close())
    end, 40)
  end)

  it("EMFILE from outside: a server under ulimit -n 64 flooded by 150 clients pauses, recovers and serves", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local coronet = require "coronet"
local tcp = coronet.tcp
local scale = tonumber(os.getenv("CORONET_TEST_TIMESCALE") or "1") or 1
coronet.set_logger(function() end)
coronet.run(function()
  local quit = coronet.ivar()
  local server = assert(tcp.Server.create(tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0)),
    function(_, r, w)
      local line = r:read_line()
      if line == "quit" then quit:fill() elseif line then w:write(line, "\n") w:flush() r:read() end
    end, { on_handler_error = "ignore" }))
  io.write(server:listening_on(), "\n")
  io.flush()
  quit.deferred:wait(30 * scale)
  local stats = server:stats()
  io.write("accept_errors=", stats.accept_errors, " accepted=", stats.accepted, "\n")
end)
io.write("clean exit\n")
]])
    f:close()
    local cpath = package.cpath:match("[^;]*build[^;]*%?%.so") or "build/?.so"
    local child = assert(io.popen(("sh -c 'ulimit -n 64; LUA_CPATH=\"%s;;\" exec lua5.4 %s' 2>&1"):format(cpath, script)))
    local port = tonumber(child:read("l"))
    assert.is_number(port)
    local flood = {}
    for i = 1, 150 do
      local s = assert(socket.tcp())
      s:settimeout(t(2))
      assert(s:connect("127.0.0.1", port))
      assert(s:send("f" .. i .. "\n"))
      flood[i] = s
    end
    socket.sleep(t(0.3))
    -- The first ~55 were accepted and echo; the rest wait in the queue.
    flood[1]:settimeout(t(3))
    assert.are.equal("f1", flood[1]:receive("*l"))
    for i = 1, 150 do flood[i]:close() end
    local served
    for _ = 1, 50 do -- until accepting has resumed
      local s = assert(socket.tcp())
      s:settimeout(t(2))
      if s:connect("127.0.0.1", port) and s:send("fresh\n") then served = s:receive("*l") end
      s:close()
      if served == "fresh" then break end
      socket.sleep(0.1)
    end
    local q = assert(socket.connect("127.0.0.1", port))
    q:send("quit\n")
    q:close()
    local rest = child:read("a")
    child:close()
    os.remove(script)
    assert.are.equal("fresh", served)
    local errors_seen, accepted = rest:match("accept_errors=(%d+) accepted=(%d+)")
    assert.is_truthy(errors_seen, rest)
    assert.is_true(tonumber(errors_seen) > 0, rest)
    assert.is_true(tonumber(accepted) >= 150, rest)
    assert.matches("clean exit", rest)
  end)
end)
