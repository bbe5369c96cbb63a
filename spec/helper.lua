-- spec/helper.lua: shared by the busted specs. Every spec runs its body in
-- coronet.run under a time limit, on loopback with OS-chosen ports, and
-- checks that nothing is left open afterwards.
local coronet = require "coronet"
local core = require "coronet.core"
local luassert = require "luassert"

local M = {}

--- Multiplies a time constant (seconds); CORONET_TEST_TIMESCALE is larger under sanitizers.
M.scale = tonumber(os.getenv("CORONET_TEST_TIMESCALE") or "1") or 1
function M.t(seconds) return seconds * M.scale end

--- CORONET_GC_STRESS=1 runs a full collection cycle at every allocation step:
-- "incremental" with pause 1 (stored as 1/4, i.e. 0: the next cycle starts as
-- soon as one ends; setting 0 would mean "unchanged"). Measured on Lua 5.4.4:
-- one finished cycle per allocation, about 200 times slower than the default.
-- Any object freed too early is then freed at once, as ASan needs to see it.
M.gc_stress = os.getenv("CORONET_GC_STRESS") == "1"
if M.gc_stress then collectgarbage("incremental", 1, 100) end

--- Runs fn inside coronet.run, failing the spec if it takes longer than `limit` seconds
-- (default 10, scaled). Returns fn's results. Afterwards asserts that no fiber,
-- connection or server is left.
function M.run(fn, limit)
  limit = M.t(limit or 10)
  local results = table.pack(coronet.run(function()
    local watchdog = coronet.spawn(function()
      if coronet.sleep(limit) then error(("spec exceeded its time limit of %.1f s"):format(limit)) end
    end)
    local r = table.pack(fn())
    watchdog:cancel()
    return table.unpack(r, 1, r.n)
  end))
  assert(core.fiber_count() == 0, "fibers left after run: " .. core.fiber_count())
  assert(core.live() == 0, "core objects left open after run: " .. core.live())
  return table.unpack(results, 1, results.n)
end

--- A server on 127.0.0.1 with an OS-chosen port; returns server, port.
function M.server(handler, opts)
  local tcp = coronet.tcp
  local where = tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0))
  local server = assert(tcp.Server.create(where, handler, opts))
  return server, server:listening_on()
end

--- Where_to_connect for 127.0.0.1:port.
function M.to(port) return coronet.tcp.Where_to_connect.of_host_and_port("127.0.0.1", port) end

--- A fresh unix socket path in a temporary directory.
function M.unix_path(name)
  local dir = os.getenv("TMPDIR") or "/tmp"
  return ("%s/coronet-spec-%d-%s.sock"):format(dir, math.random(1, 1 << 30), name or "s")
end

--- This process's pid, read from /proc/self/stat here (a child's /proc/self
-- would be the child's).
function M.pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return assert(math.tointeger(pid))
end

--- Counts open descriptors of this process (to catch leaks), close-on-exec
-- sockets included: it lists /proc/<our pid>/fd, not a child's /proc/self/fd.
-- The listing's own pipe is left out: popen may not yet have closed its
-- copy of the write end here when the listing runs (a spurious +1).
function M.open_fds()
  local pid = M.pid()
  local p = io.popen("readlink /proc/$$/fd/1; ls -l /proc/" .. pid .. "/fd 2>/dev/null")
  local own_pipe = p:read("l")
  local n = 0
  for line in p:lines() do
    local target = line:match(" %-> (.*)$")
    if target and target ~= own_pipe then n = n + 1 end
  end
  p:close()
  return n
end

--- Asserts (with busted's assert) that no fiber and no core object is left,
-- for specs that call coronet.run themselves or expect helper.run to raise.
function M.assert_clean()
  luassert.are.equal(0, core.fiber_count())
  luassert.are.equal(0, core.live())
end

--- Connects to `target` and returns socket, reader, writer, raising on failure.
-- `target` is a port on 127.0.0.1 (a number), a unix socket path (a string)
-- or a Where_to_connect; `opts` goes to tcp.connect.
function M.connect(target, opts)
  local where = target
  if type(target) == "number" then
    where = M.to(target)
  elseif type(target) == "string" then
    where = coronet.tcp.Where_to_connect.of_file(target)
  end
  local sock, r, w = coronet.tcp.connect(where, opts)
  assert(sock, r)
  return sock, r, w
end

--- A connected pair: starts a server (M.server, with `server_opts`) whose
-- handler runs `script(reader, writer)` for each client, connects to it with
-- `client_opts` and returns the client's socket, reader, writer.
function M.pair(script, client_opts, server_opts)
  local _, port = M.server(function(_, r, w) script(r, w) end, server_opts)
  return M.connect(port, client_opts)
end

--- A connected pair whose server sends `data` and closes.
function M.sends(data, client_opts)
  return M.pair(function(_, w) w:write(data) end, client_opts)
end

--- Asserts that a call's results are `nil, err, code` with this code and an error value of it.
function M.failed_with(code, ...)
  local value, err, got = ...
  luassert.is_nil(value)
  luassert.equal(code, got)
  luassert.is_true(coronet.errors.is(err, code), tostring(err))
end

--- Polls pred() every 5 ms until it holds or `limit` seconds (default 2,
-- scaled) pass; returns whether it held. Call it inside a fiber.
function M.eventually(pred, limit)
  local deadline = coronet.now() + M.t(limit or 2)
  while not pred() do
    if coronet.now() > deadline then return false end
    coronet.sleep(0.005)
  end
  return true
end

--- Waits for deferred `d` at most `limit` seconds (default 2, scaled) and
-- asserts (with busted's assert) that it is determined.
function M.await(d, limit)
  d:wait(M.t(limit or 2))
  luassert.is_true(d:is_determined())
end

--- A server handler that echoes each line it reads (with "\n") until EOF,
-- asserting that every write succeeds. Use as M.server(M.echo).
function M.echo(_, reader, writer)
  while true do
    local line = reader:read_line()
    if not line then return end
    assert(writer:write(line, "\n"))
  end
end

--- A server (M.server with `opts`) that records what one client sends: its
-- handler writes `greeting` first when given, then reads until EOF. Returns
-- server, port and a deferred determined with (data, code): everything read,
-- and the reader's end code (nil at a clean EOF). Meant for one client only.
function M.recording_server(opts, greeting)
  local received = coronet.ivar()
  local server, port = M.server(function(_, r, w)
    if greeting then w:write(greeting) end
    local data, _, code = r:contents()
    received:fill(data, code)
  end, opts)
  return server, port, received.deferred
end

--- A port on 127.0.0.1 that nothing listens on: an OS-chosen port whose
-- server has been closed again. Waits at most `limit` seconds (default 2,
-- scaled) for the close, raising if it does not finish.
function M.closed_port(limit)
  local server, port = M.server(function() end)
  local finished = server:close()
  finished:wait(M.t(limit or 2))
  assert(finished:is_determined(), "server did not finish closing")
  return port
end

--- A listener that never answers: it takes one connection
-- (max_connections = 1) and has backlog 1; fillers are queued until a
-- connect hangs. Returns its port and a function that releases everything.
-- Call it inside a fiber.
function M.black_hole()
  local hold = coronet.ivar()
  local server, port = M.server(function() hold.deferred:wait() end, { max_connections = 1, backlog = 1 })
  local fillers = {}
  local function release()
    for _, sock in ipairs(fillers) do sock:close() end
    hold:fill()
    server:close()
    for _, sock in ipairs(fillers) do sock:close_finished() end
    server:close_finished()
  end
  for _ = 1, 8 do
    local sock, _, code = coronet.tcp.connect_sock(M.to(port), { timeout = M.t(0.2) })
    if not sock then
      assert(code == "timeout", code)
      return port, release
    end
    fillers[#fillers + 1] = sock
  end
  release()
  error("the accept queue never filled: no black hole on this kernel")
end

--- A port that refuses: bound, never listening. Returns it and its socket.
function M.refused_port()
  local sock = coronet.tcp.socket()
  assert(sock:bind(coronet.address("127.0.0.1", 0)))
  return sock:getsockname().port, sock
end

--- Fills the kernel's buffers towards a peer that does not read, under a
-- mark high enough that no write waits, then lowers the mark to 1 KiB: the
-- pending bytes are past it and the next write must wait.
function M.fill_writer(sock, w)
  local big = 4 * 1024 * 1024 -- more than loopback's socket buffers take
  sock:configure({ writer_buffer_size = 1024 * 1024 * 1024 })
  for _ = 1, 32 do
    if w:pending() > 1024 then
      sock:configure({ writer_buffer_size = 1024 })
      return
    end
    assert(w:write(string.rep("b", big)))
  end
  error("the kernel took everything")
end

--- Outside coronet.run: runs the loop until every fiber and core object is
-- gone (closes finish in the loop; at most 5 s, scaled), then asserts it.
function M.settle()
  local deadline = coronet.now() + M.t(5)
  while (core.fiber_count() > 0 or core.live() > 0) and coronet.now() < deadline do
    coronet.step(0.01)
  end
  M.assert_clean()
end

--- Polls a coronet.connection `conn` (update, then wait on it) until
-- pred(conn) holds; raises after `limit` seconds (default 2, scaled).
function M.poll_until(conn, pred, limit)
  local connection = require "coronet.connection"
  local deadline = coronet.now() + M.t(limit or 2)
  local waiter = connection.waiter(conn)
  while true do
    conn:update()
    if pred(conn) then return true end
    local left = deadline - coronet.now()
    if left <= 0 then error("condition not reached; state: " .. tostring(conn:state()), 2) end
    connection.wait(waiter, { timeout = math.min(left, 0.05) })
  end
end

--- A coronet.connection echo server (listen + accept_into_set + update_set)
-- on 127.0.0.1, polled by `tick()`: every complete line is sent back with
-- "\n". `opts` goes to accept_into_set. Returns listening, set, tick.
function M.polling_echo_server(opts)
  local connection = require "coronet.connection"
  local listening = assert(connection.listen(coronet.address("127.0.0.1", 0)))
  local set = connection.empty_set()
  local function tick()
    connection.accept_into_set(listening, function(address) return { from = address } end, set, opts)
    set:update()
    for conn in set:each() do
      while true do
        local line = conn:receive_line()
        if not line then break end
        conn:send(line .. "\n")
      end
    end
  end
  return listening, set, tick
end

--- Starts examples/<name> with port 0 from another directory (the example
-- must find the module by itself) and waits for "listening on port N" in
-- its stderr. Returns its pid, port and log file. Call it inside a fiber.
function M.start_example(name)
  local root = io.popen("pwd"):read("l")
  local log = os.tmpname()
  local p = assert(io.popen(("cd / && { lua5.4 %s/examples/%s 0 2>%s & echo $!; }"):format(root, name, log)))
  local pid = tonumber(p:read("l"))
  p:close()
  assert(pid, "no pid for " .. name)
  local port
  local deadline = coronet.now() + M.t(5)
  while not port and coronet.now() < deadline do
    local f = io.open(log)
    port = f and tonumber((f:read("a") or ""):match("listening on port (%d+)"))
    if f then f:close() end
    if not port then coronet.sleep(M.t(0.02)) end
  end
  assert(port, name .. " did not report its port")
  return pid, port, log
end

--- Sends SIGTERM to an example started by start_example and asserts (with
-- busted's assert) that it exits. Call it inside a fiber.
function M.stop_example(pid, log, name)
  luassert.is_true(os.execute("kill -TERM " .. pid))
  local deadline = coronet.now() + M.t(5)
  while os.execute("kill -0 " .. pid .. " 2>/dev/null") and coronet.now() < deadline do coronet.sleep(M.t(0.02)) end
  luassert.is_falsy(os.execute("kill -0 " .. pid .. " 2>/dev/null"), name .. " did not exit on SIGTERM")
  os.remove(log)
end

--- The checkout's absolute path (the directory holding spec/).
M.root = (debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$")) or "."
if M.root:sub(1, 1) ~= "/" then M.root = os.getenv("PWD") .. "/" .. M.root end

--- Runs Lua `source` in a child lua5.4 under `timeout` (`opts.limit` seconds,
-- default 20, scaled) with coronet and spec/ on its path through LUA_PATH and
-- LUA_CPATH, absolute, so that it also runs from another directory
-- (`opts.outside`: from /). Returns its output (stdout and stderr) and its
-- exit status (128 + N for a death by signal N, as the shell reports it).
function M.child(source, opts)
  opts = opts or {}
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(source)
  f:close()
  local lua_path = ("%s/lua/?.lua;%s/lua/?/init.lua;%s/spec/?.lua;;"):format(M.root, M.root, M.root)
  local cpath = package.cpath:gsub("[^;]+", function(template) -- busted's may be relative
    return template:sub(1, 1) == "/" and template or os.getenv("PWD") .. "/" .. template
  end)
  local cmd = ("%senv -u LUA_INIT LUA_PATH='%s' LUA_CPATH='%s' timeout -k 2 %d lua5.4 %s 2>&1; echo \"EXIT=$?\""):format(
    opts.outside and "cd / && " or "", lua_path, cpath, math.ceil(M.t(opts.limit or 20)), file)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  os.remove(file)
  local status = tonumber(out:match("EXIT=(%d+)%s*$"))
  return out:gsub("EXIT=%d+%s*$", ""), status
end

--- A client connected to a server whose handler hands its side over and stays
-- until finish(): returns the client's socket and reader, the server's side
-- as { sock, r, w }, and finish (which closes both sides and the server).
function M.linked(client_opts)
  local got, done = coronet.ivar(), coronet.ivar()
  local server, port = M.server(function(_, r, w)
    got:fill({ sock = r:socket(), r = r, w = w })
    done.deferred:wait()
  end)
  local sock, r = M.connect(port, client_opts)
  M.await(got.deferred)
  local peer = got.deferred:peek()
  local function finish()
    done:fill()
    sock:close()
    peer.sock:close()
    M.await(server:close())
    assert(sock:close_finished(M.t(2)))
  end
  return sock, r, peer, finish
end

--- Waits until the reader holds n bytes (and no more).
function M.holds(r, n)
  assert(M.eventually(function() return r:buffered() >= n end), "the bytes never arrived")
  luassert.equal(n, r:buffered())
end

--- Asserts (with busted's assert) that three stray coroutine.resume calls of
-- co, a fiber waiting in coronet, are refused: `true, nil, message`, and
-- the fiber keeps waiting.
function M.refuse_strays(co)
  luassert.are.equal("suspended", coroutine.status(co))
  for _ = 1, 3 do
    local ok, value, err = coroutine.resume(co, "stray", "values")
    luassert.is_true(ok)
    luassert.is_nil(value)
    luassert.matches("stray coroutine.resume", tostring(err), 1, true)
  end
end

return M
