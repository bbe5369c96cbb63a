-- spec/misuse_spec.lua: every public function called wrongly: bad types,
-- negative, NaN and huge numbers, closed objects, and from places where no
-- fiber can wait (the main thread, coroutine.wrap, a C boundary, a loop
-- driven by coronet.step). Each call must raise a clear error that names the
-- function or the argument, or return nil, err, code; none may crash, hang
-- or leave the runtime unusable. Each case runs in a child lua5.4 (under
-- `timeout`), so a crash fails that case alone; the child then checks that a
-- fresh coronet.run still works and that nothing was left open.
local helper = require "helper"

-- The child's side: runs the case file given as arg[1] and prints its verdict.
local HARNESS = [==[
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
local coronet = require "coronet"
local core = require "coronet.core"
local helper = require "helper"
local tcp = coronet.tcp

-- What calling f(...) did: "raised", message | "failed", code | "returned", value.
local function try(f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then return "raised", tostring(r[2]) end
  if r[2] == nil and r.n >= 4 then return "failed", tostring(r[4]) end
  return "returned", tostring(r[2])
end

-- Runs fn in a fiber (helper.run, 10 s watchdog) and returns its results.
local function in_fiber(fn) return helper.run(fn, 10) end

-- Inside a run: a client socket, reader and writer talking to an echo server.
local function connected(opts)
  local _, port = helper.server(helper.echo)
  return helper.connect(port, opts)
end

local function where() return tcp.Where_to_connect.of_host_and_port("127.0.0.1", helper.closed_port()) end

local env = setmetatable({ coronet = coronet, core = core, helper = helper, tcp = tcp, try = try,
  in_fiber = in_fiber, connected = connected, where = where }, { __index = _G })
local f = assert(io.open(arg[1]))
local case = assert(load(f:read("a"), "=case", "t", env))
f:close()
local kind, detail = case()
io.write("VERDICT\t", tostring(kind), "\t", (tostring(detail):gsub("\n", " ")), "\n")
local ok, after = pcall(coronet.run, function() coronet.sleep(0.001) return "usable" end)
io.write("AFTER\t", ok and after or tostring(after), "\t", core.fiber_count(), "\t", core.live(), "\n")
]==]

local harness_file
local function harness()
  if not harness_file then
    harness_file = os.tmpname()
    local f = assert(io.open(harness_file, "w"))
    f:write(HARNESS)
    f:close()
  end
  return harness_file
end

-- Runs one case in a child; returns kind, detail, the AFTER line and the raw output.
local function run_case(source)
  local case_file = os.tmpname()
  local f = assert(io.open(case_file, "w"))
  f:write(source)
  f:close()
  local limit = math.ceil(helper.t(20))
  local cmd = ("LUA_CPATH='%s' timeout -k 2 %d lua5.4 %s %s 2>&1; echo \"EXIT=$?\""):format(
    package.cpath, limit, harness(), case_file)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  os.remove(case_file)
  local kind, detail = out:match("VERDICT\t([^\t]*)\t([^\n]*)")
  local after = out:match("AFTER\t([^\n]*)")
  return kind, detail, after, out
end

-- raises(pattern): the call raised a message matching pattern.
-- fails(code): it returned nil, err, code.
local function raises(pattern) return { kind = "raised", pattern = pattern } end
local function fails(code) return { kind = "failed", pattern = "^" .. code .. "$" } end

local function check(name, source, expect)
  it(name, function()
    local kind, detail, after, out = run_case(source)
    assert.is_truthy(kind, "no verdict (crash or hang?):\n" .. out)
    assert.are.equal(expect.kind, kind, "got " .. kind .. ": " .. tostring(detail))
    assert.matches(expect.pattern, detail)
    assert.are.equal("usable\t0\t0", after, "after the case:\n" .. out)
    assert.matches("EXIT=0", out)
  end)
end

-- luaL_argerror's message; a module function may be named with its table ("coronet.sleep").
local function bad_arg(n, name) return raises(("bad argument #%d to '[%%w_.]-%s[%%w_]*'"):format(n, name)) end
local NO_FIBER = "coronet%.spawn"

describe("misuse: coronet runtime", function()
  check("run inside run raises", [[return in_fiber(function() return try(coronet.run, function() end) end)]],
    raises("already running"))
  check("spawn(42) raises", [[return try(coronet.spawn, 42)]], bad_arg(1, "spawn"))
  check("sleep('x') raises a bad argument", [[return in_fiber(function() return try(coronet.sleep, "x") end)]],
    bad_arg(1, "sleep"))
  check("sleep(-1) raises a bad argument", [[return in_fiber(function() return try(coronet.sleep, -1) end)]],
    bad_arg(1, "sleep"))
  check("sleep(NaN) raises a bad argument", [[return in_fiber(function() return try(coronet.sleep, 0/0) end)]],
    bad_arg(1, "sleep"))
  check("sleep on the main thread raises naming coronet.spawn", [[return try(coronet.sleep, 0.01)]], raises(NO_FIBER))
  check("sleep inside coroutine.wrap in a fiber raises naming coronet.spawn", [[
    return in_fiber(function() return coroutine.wrap(function() return try(coronet.sleep, 0.01) end)() end)]],
    raises(NO_FIBER))
  check("step inside a fiber raises", [[return in_fiber(function() return try(coronet.step, 0) end)]],
    raises("running"))
  check("set_logger(42) raises a bad argument", [[return try(coronet.set_logger, 42)]], bad_arg(1, "set_logger"))
  check("join('x') raises", [[
    return in_fiber(function() local fib = coronet.spawn(function() end) return try(function() return fib:join("x") end) end)]],
    raises("bad argument #1 to 'join' %(timeout must be seconds"))
end)

describe("misuse: deferred and ivar", function()
  check("fill twice raises", [[local iv = coronet.ivar() iv:fill(1) return try(function() return iv:fill(2) end)]],
    raises("already filled"))
  check("upon(42) raises", [[return try(function() return coronet.ivar().deferred:upon(42) end)]],
    raises("bad argument #1 to 'upon' %(function expected, got number%)"))
  check("wait on the main thread raises naming coronet.spawn", [[
    local d = coronet.ivar().deferred return try(function() return d:wait() end)]], raises(NO_FIBER))
  check("wait inside coroutine.wrap in a fiber raises naming coronet.spawn", [[
    return in_fiber(function()
      local d = coronet.ivar().deferred
      return coroutine.wrap(function() return try(function() return d:wait(0.01) end) end)()
    end)]], raises(NO_FIBER))
  check("wait('x') raises", [[
    return in_fiber(function() local d = coronet.ivar().deferred return try(function() return d:wait("x") end) end)]],
    raises("bad argument #1 to 'wait' %(timeout must be seconds"))
end)

describe("misuse: addresses and where", function()
  check("address with a malformed literal raises", [[return try(coronet.address, "1.2.3", 80)]], bad_arg(1, "address"))
  check("address with port -1 raises", [[return try(coronet.address, "127.0.0.1", -1)]], raises("port"))
  check("address with port 70000 raises", [[return try(coronet.address, "127.0.0.1", 70000)]], raises("port"))
  check("address with port NaN raises", [[return try(coronet.address, "127.0.0.1", 0/0)]], bad_arg(2, "address"))
  check("address(nil) raises", [[return try(coronet.address, nil, 80)]], bad_arg(1, "address"))
  check("unix_address too long raises", [[return try(coronet.unix_address, ("x"):rep(200))]], raises("long"))
  check("of_host_and_port('', 80) raises", [[return try(tcp.Where_to_connect.of_host_and_port, "", 80)]],
    raises("host"))
  check("of_host_and_port(nil, 80) raises", [[return try(tcp.Where_to_connect.of_host_and_port, nil, 80)]],
    raises("host"))
  check("of_host_and_port with port 0 raises", [[return try(tcp.Where_to_connect.of_host_and_port, "h", 0)]],
    raises("bad port"))
  check("of_host_and_port with port 1.5 raises", [[return try(tcp.Where_to_connect.of_host_and_port, "h", 1.5)]],
    raises("bad port"))
  check("of_host_and_port with port '80' raises", [[return try(tcp.Where_to_connect.of_host_and_port, "h", "80")]],
    raises("bad port"))
  check("of_file(nil) raises", [[return try(tcp.Where_to_connect.of_file, nil)]], bad_arg(1, "of_file"))
  check("of_address('x') raises", [[return try(tcp.Where_to_connect.of_address, "x")]], raises("address value"))
  check("on_port(65536) raises", [[return try(tcp.Where_to_listen.on_port, 65536)]], raises("bad port"))
  check("on_port(-1) raises", [[return try(tcp.Where_to_listen.on_port, -1)]], raises("bad port"))
end)

describe("misuse: tcp.connect", function()
  check("connect(nil) raises", [[return in_fiber(function() return try(tcp.connect, nil) end)]],
    raises("Where_to_connect"))
  check("connect({}) raises", [[return in_fiber(function() return try(tcp.connect, {}) end)]],
    raises("Where_to_connect"))
  check("connect on the main thread raises naming coronet.spawn", [[
    return try(tcp.connect, tcp.Where_to_connect.of_host_and_port("127.0.0.1", 9))]], raises(NO_FIBER))
  check("connect inside coroutine.wrap in a fiber raises naming coronet.spawn", [[
    return in_fiber(function()
      local w = where()
      return coroutine.wrap(function() return try(tcp.connect, w) end)()
    end)]], raises(NO_FIBER))
  check("connect with timeout 'x' raises naming connect", [[
    return in_fiber(function() return try(tcp.connect, where(), { timeout = "x" }) end)]],
    raises("tcp.connect: option 'timeout'"))
  check("connect with buffer_age_limit -1 raises", [[
    return in_fiber(function()
      local _, port = helper.server(helper.echo)
      return try(tcp.connect, helper.to(port), { buffer_age_limit = -1 })
    end)]], raises("buffer_age_limit"))
  check("connect to a closed port fails with ECONNREFUSED", [[return in_fiber(function() return try(tcp.connect, where()) end)]],
    fails("ECONNREFUSED"))
  check("with_connection(where, nil) raises", [[return in_fiber(function() return try(tcp.with_connection, where(), nil) end)]],
    bad_arg(2, "with_connection"))
  check("tcp.socket('bogus') raises a bad argument", [[return in_fiber(function() return try(tcp.socket, "bogus") end)]],
    bad_arg(1, "socket"))
  check("adopt_fd('x') raises a bad argument", [[return in_fiber(function() return try(tcp.adopt_fd, "x") end)]],
    bad_arg(1, "adopt_fd"))
end)

describe("misuse: tcp.Server", function()
  local LISTEN = [[tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0))]]
  check("create with a non-function handler raises", [[return in_fiber(function() return try(tcp.Server.create, ]]
    .. LISTEN .. [[, 42) end)]], bad_arg(2, "create"))
  check("create with nil where raises", [[return in_fiber(function() return try(tcp.Server.create, nil, function() end) end)]],
    raises("."))
  check("create with on_handler_error = 42 raises", [[return in_fiber(function() return try(tcp.Server.create, ]]
    .. LISTEN .. [[, function() end, { on_handler_error = 42 }) end)]], raises("on_handler_error"))
  check("close twice is fine and close_finished is determined", [[
    return in_fiber(function()
      local server = helper.server(helper.echo)
      server:close()
      return try(function() server:close() return server:close_finished():wait(2) end)
    end)]], { kind = "returned", pattern = "." })
end)

describe("misuse: socket methods", function()
  check("setoption('bogus') raises", [[
    return in_fiber(function() local s = connected() return try(function() return s:setoption("bogus", true) end) end)]],
    bad_arg(1, "setoption"))
  check("shutdown('bogus') raises", [[
    return in_fiber(function() local s = connected() return try(function() return s:shutdown("bogus") end) end)]],
    bad_arg(1, "shutdown"))
  check("settimeouts('x') raises", [[
    return in_fiber(function() local s = connected() return try(function() return s:settimeouts("x") end) end)]], raises("number"))
  check("close_finished('x') raises", [[
    return in_fiber(function() local s = connected() return try(function() return s:close_finished("x") end) end)]], raises("number"))
  check("close then close again is fine", [[
    return in_fiber(function() local s = connected() s:close() return try(function() return s:close() end) end)]],
    { kind = "returned", pattern = "." })
  check("abort after close is fine", [[
    return in_fiber(function() local s = connected() s:close() return try(function() return s:abort() end) end)]],
    { kind = "returned", pattern = "." })
end)

describe("misuse: reader", function()
  check("read(0) raises a bad argument", [[
    return in_fiber(function() local _, r = connected() return try(function() return r:read(0) end) end)]], bad_arg(1, "read"))
  check("read(-1) raises a bad argument", [[
    return in_fiber(function() local _, r = connected() return try(function() return r:read(-1) end) end)]], bad_arg(1, "read"))
  check("read('x') raises", [[
    return in_fiber(function() local _, r = connected() return try(function() return r:read("x") end) end)]], raises("read"))
  check("read_until('') raises", [[
    return in_fiber(function() local _, r = connected() return try(function() return r:read_until("") end) end)]], raises("read_until"))
  check("read_until(nil) raises", [[
    return in_fiber(function() local _, r = connected() return try(function() return r:read_until(nil) end) end)]], raises("read_until"))
  check("really_read(-1) raises", [[
    return in_fiber(function() local _, r = connected() return try(function() return r:really_read(-1) end) end)]], raises("really_read"))
  check("peek(-1) raises", [[
    return in_fiber(function() local _, r = connected() return try(function() return r:peek(-1) end) end)]], raises("peek"))
  check("read_line{timeout='x'} raises naming read_line", [[
    return in_fiber(function() local _, r = connected() return try(function() return r:read_line({ timeout = "x" }) end) end)]],
    raises("read_line: option 'timeout' must be a number of seconds"))
  check("receive('*x') raises", [[
    return in_fiber(function() local _, r = connected() return try(function() return r:receive("*x") end) end)]], raises("receive"))
  check("a closed reader raises on read_line", [[
    return in_fiber(function() local _, r = connected() r:close() return try(function() return r:read_line() end) end)]], raises("closed"))
  check("read_line on a closed socket's reader fails with closed or raises", [[
    return in_fiber(function()
      local s, r = connected()
      s:close()
      local kind, detail = try(function() return r:read_line() end)
      if kind == "raised" and detail:match("closed") then return "failed", "closed" end
      return kind, detail
    end)]], fails("closed"))
  check("read_line inside coroutine.wrap in a fiber raises naming coronet.spawn", [[
    return in_fiber(function()
      local _, r = connected()
      return coroutine.wrap(function() return try(function() return r:read_line() end) end)()
    end)]], raises(NO_FIBER))
end)

describe("misuse: writer", function()
  check("write(nil) raises", [[
    return in_fiber(function() local _, _, w = connected() return try(function() return w:write(nil) end) end)]], raises("write"))
  check("write(true) raises", [[
    return in_fiber(function() local _, _, w = connected() return try(function() return w:write(true) end) end)]], raises("write"))
  check("write after the socket closed fails with closed", [[
    return in_fiber(function() local s, _, w = connected() s:close() return try(function() return w:write("x") end) end)]],
    fails("closed"))
end)

-- A client connected by a fiber spawned outside any run, the loop driven by
-- coronet.step as a host would; the case's body runs on the main thread.
local STEPPED = [[
local server, sock, reader, writer
coronet.spawn(function()
  local port
  server, port = helper.server(helper.echo)
  sock, reader, writer = helper.connect(port, { writer_buffer_size = 16 })
end)
for _ = 1, 1000 do
  if sock then break end
  coronet.step()
end
local kind, detail = (function() %s end)()
sock:close()
server:close()
for _ = 1, 1000 do
  if not coronet.step(0) then break end
end
return kind, detail
]]

describe("misuse: from the main thread while coronet.step drives the loop", function()
  check("read_line raises naming coronet.spawn", STEPPED:format([[return try(function() return reader:read_line() end)]]),
    raises(NO_FIBER))
  -- A write is taken whole while pending is below the mark; the next one must wait.
  check("write above the mark raises naming coronet.spawn",
    STEPPED:format([[writer:write(("x"):rep(8 * 1024 * 1024))
      return try(function() return writer:write("x") end)]]), raises(NO_FIBER))
  check("flush with bytes pending raises naming coronet.spawn",
    STEPPED:format([[writer:write("abc") return try(function() return writer:flush() end)]]), raises(NO_FIBER))
  check("close_finished raises naming coronet.spawn",
    STEPPED:format([[return try(function() return sock:close_finished() end)]]), raises(NO_FIBER))
end)

describe("misuse: fibers driven the wrong way", function()
  check("a bare coroutine.yield() in a fiber resumes on the next turn", [[
    return in_fiber(function()
      local f = coronet.spawn(function() for _ = 1, 3 do coroutine.yield() end return "done" end)
      return try(function() return f:join(2) end)
    end)]], { kind = "returned", pattern = "^done$" })
  check("coronet.run from a fiber driven by coronet.step raises", [[
    local kind, detail
    coronet.spawn(function() kind, detail = try(coronet.run, function() end) end)
    for _ = 1, 100 do
      if kind then break end
      coronet.step(0)
    end
    for _ = 1, 1000 do
      if not coronet.step(0) then break end
    end
    return kind, detail]], raises("running"))
  check("sleep(math.huge) sleeps until cancelled", [[
    return in_fiber(function()
      local f = coronet.spawn(function() return coronet.sleep(math.huge) end)
      coronet.sleep(0.05)
      local done = f:is_done()
      f:cancel()
      return "returned", tostring(done)
    end)]], { kind = "returned", pattern = "^false$" })
end)

describe("misuse: values at the edges", function()
  check("really_read(math.huge) raises", [[
    return in_fiber(function() local _, r = connected() return try(function() return r:really_read(math.huge) end) end)]],
    raises("really_read"))
end)

describe("misuse: options out of range", function()
  local function connect_with(opts)
    return ([[
    return in_fiber(function()
      local _, port = helper.server(helper.echo)
      return try(tcp.connect, helper.to(port), %s)
    end)]]):format(opts)
  end
  check("connect with timeout = -1 raises", connect_with("{ timeout = -1 }"), raises("tcp.connect: option 'timeout'"))
end)

describe("misuse: more of the surface", function()
  check("errors.new(nil) raises", [[return try(coronet.errors.new, nil, "msg")]], raises("."))
  check("errors.is on a non-error is false", [[return try(coronet.errors.is, 42)]], { kind = "returned", pattern = "^false$" })
  check("coronet.join(42) raises", [[return in_fiber(function() return try(coronet.join, 42) end)]], raises("."))
  check("cancel on a finished fiber is harmless", [[
    return in_fiber(function()
      local f = coronet.spawn(function() return 1 end)
      f:join(1)
      return try(function() f:cancel() return f:join(1) end)
    end)]], { kind = "returned", pattern = "^1$" })
  check("deferred.of(...) is determined at once", [[
    return try(function() return require("coronet.deferred").of(7):peek() end)]], { kind = "returned", pattern = "^7$" })
  check("backend_timeout outside a run returns without raising", [[return try(coronet.backend_timeout)]],
    { kind = "returned", pattern = "." })
  check("unix_address('') raises", [[return try(coronet.unix_address, "")]], raises("."))
  check("of_file('') raises", [[return try(tcp.Where_to_connect.of_file, "")]], raises("."))
  check("on_file(nil) raises", [[return try(tcp.Where_to_listen.on_file, nil)]], raises("."))
  check("Server.create on a port in use fails with EADDRINUSE", [[
    return in_fiber(function()
      local _, port = helper.server(helper.echo)
      return try(tcp.Server.create, tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", port)), function() end)
    end)]], fails("EADDRINUSE"))
  check("server:set_drop_incoming_connections after close is harmless", [[
    return in_fiber(function()
      local server = helper.server(helper.echo)
      server:close():wait(2)
      return try(function() server:set_drop_incoming_connections(true) return server:num_connections() end)
    end)]], { kind = "returned", pattern = "^0$" })
  check("server:listening_on after close raises or returns", [[
    return in_fiber(function()
      local server = helper.server(helper.echo)
      server:close():wait(2)
      local kind, detail = try(function() return server:listening_on() end)
      if kind == "raised" and detail:match("closed") then return "returned", "closed" end
      return kind, detail
    end)]], { kind = "returned", pattern = "." })
  check("configure('x') raises", [[
    return in_fiber(function() local s = connected() return try(function() return s:configure("x") end) end)]],
    raises("configure"))
  check("settimeouts(-1) raises", [[
    return in_fiber(function() local s = connected() return try(function() return s:settimeouts(-1) end) end)]],
    raises("settimeouts"))
  check("buffered() on a closed reader raises or returns 0", [[
    return in_fiber(function()
      local _, r = connected()
      r:close()
      local kind, detail = try(function() return r:buffered() end)
      if kind == "raised" and detail:match("closed") then return "returned", "0" end
      return kind, detail
    end)]], { kind = "returned", pattern = "^0$" })
  check("read_line{timeout = -1} raises", [[
    return in_fiber(function() local _, r = connected() return try(function() return r:read_line({ timeout = -1 }) end) end)]],
    raises("read_line"))
  check("read_line{timeout = NaN} raises", [[
    return in_fiber(function() local _, r = connected() return try(function() return r:read_line({ timeout = 0/0 }) end) end)]],
    raises("read_line"))
  check("read_line{timeout = math.huge} waits until data arrives", [[
    return in_fiber(function()
      local _, r, w = connected()
      coronet.spawn(function() coronet.sleep(0.02) w:write("late\n") end)
      return try(function() return r:read_line({ timeout = math.huge }) end)
    end)]], { kind = "returned", pattern = "^late$" })
  check("read(1e300) raises a bad argument", [[
    return in_fiber(function() local _, r = connected() return try(function() return r:read(1e300) end) end)]],
    bad_arg(1, "read"))
  check("peek(0) returns an empty string or raises", [[
    return in_fiber(function()
      local _, r = connected()
      local kind, detail = try(function() return r:peek(0) end)
      if kind == "raised" and detail:match("peek") then return "returned", "" end
      return kind, detail
    end)]], { kind = "returned", pattern = "^$" })
  check("write(1.5) writes the number's text", [[
    return in_fiber(function()
      local _, r, w = connected()
      w:write(1.5, "\n")
      return try(function() return r:read_line({ timeout = 2 }) end)
    end)]], { kind = "returned", pattern = "^1%.5$" })
  check("write({'a', 42, {}}) raises", [[
    return in_fiber(function() local _, _, w = connected() return try(function() return w:write({ "a", 42, {} }) end) end)]],
    raises("write"))
  check("flush(-1) raises", [[
    return in_fiber(function() local _, _, w = connected() w:write("x") return try(function() return w:flush(-1) end) end)]],
    raises("flush"))
  check("pending() after close returns a number", [[
    return in_fiber(function() local s, _, w = connected() s:close() return try(function() return w:pending() end) end)]],
    { kind = "returned", pattern = "^%d+$" })
  check("with_connection on the main thread raises naming coronet.spawn", [[
    return try(tcp.with_connection, tcp.Where_to_connect.of_host_and_port("127.0.0.1", 9), function() end)]],
    raises(NO_FIBER))
end)

-- Cases that failed before the fixes of issues 6 and 7.
-- "yield across a C-call boundary" or coronet's own "must run in a fiber" message.
local CANNOT_YIELD = "[yY]ield"
local function connect_with(opts)
  return ([[
    return in_fiber(function()
      local _, port = helper.server(helper.echo)
      return try(tcp.connect, helper.to(port), %s)
    end)]]):format(opts)
end
local function listen_with(opts)
  return ([[
    return in_fiber(function()
      local where = tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0))
      return try(tcp.Server.create, where, function() end, %s)
    end)]]):format(opts)
end

describe("misuse: cases fixed by issues 6 and 7", function()
  check("run(nil) raises naming the function", [[return try(coronet.run, nil)]], raises("function"))
  check("sleep inside a table.sort comparator raises, and the fiber can still sleep", [[
    return in_fiber(function()
      local kind, detail = try(function() table.sort({ 3, 1, 2 }, function(a, b) coronet.sleep(0.001) return a < b end) end)
      assert(coronet.sleep(0.001))
      return kind, detail
    end)]], raises(CANNOT_YIELD))
  check("read_line inside a table.sort comparator raises, and the fiber can still read", [[
    return in_fiber(function()
      local _, r, w = connected()
      local kind, detail = try(function() table.sort({ 3, 1, 2 }, function(a, b) r:read_line() return a < b end) end)
      collectgarbage()
      w:write("line\n")
      assert(r:read_line({ timeout = 2 }) == "line")
      return kind, detail
    end)]], raises(CANNOT_YIELD))
  check("deferred:wait inside a string.gsub callback raises, and the fiber can still wait", [[
    return in_fiber(function()
      local iv = coronet.ivar()
      local kind, detail = try(function() ("ab"):gsub(".", function() iv.deferred:wait(0.01) end) end)
      coronet.spawn(function() iv:fill(1) end)
      assert(iv.deferred:wait(2) == 1)
      return kind, detail
    end)]], raises(CANNOT_YIELD))
  check("a stray coroutine.resume of a sleeping fiber is refused", [[
    return in_fiber(function()
      local co
      local sleeper = coronet.spawn(function() co = coroutine.running() return coronet.sleep(0.05) end)
      coronet.sleep(0.01)
      local ok, value, message = coroutine.resume(co)
      assert(sleeper:join(2) == true, "the real wake-up did not arrive")
      if ok and value == nil then return "refused", tostring(message) end
      return "resumed", tostring(value)
    end)]], { kind = "refused", pattern = "stray coroutine.resume" })
  check("step('x') raises a bad argument", [[return try(coronet.step, "x")]], raises("step"))
  check("step(-1) raises a bad argument", [[return try(coronet.step, -1)]], raises("step"))
  check("signal('SIGBOGUS') raises at the call", [[return in_fiber(function() return try(coronet.signal, "SIGBOGUS") end)]],
    raises("SIGBOGUS"))
  check("an address compared with another userdata is false", [[
    return try(function() return coronet.address("127.0.0.1", 1) == io.stdout end)]],
    { kind = "returned", pattern = "^false$" })
  check("a host with an embedded NUL fails as EAI_NONAME, never connecting to the part before it", [[
    return in_fiber(function()
      local _, port = helper.server(helper.echo)
      return try(tcp.connect, tcp.Where_to_connect.of_host_and_port("127.0.0.1\0.evil.example", port))
    end)]], fails("EAI_NONAME"))
  check("getfd after close raises or fails with closed", [[
    return in_fiber(function()
      local s = connected()
      s:close()
      local kind, detail = try(function() return s:getfd() end)
      if kind == "raised" and detail:match("closed") then return "failed", "closed" end
      return kind, detail
    end)]], fails("closed"))
  check("bind after close fails with closed", [[
    return in_fiber(function()
      local s = tcp.socket()
      s:close()
      return try(function() return s:bind(coronet.address("127.0.0.1", 0)) end)
    end)]], fails("closed"))
  check("write({}) raises", [[
    return in_fiber(function() local _, _, w = connected() return try(function() return w:write({}) end) end)]],
    raises("write"))
  check("write of a table with __tostring raises", [[
    return in_fiber(function()
      local _, _, w = connected()
      return try(function() return w:write(setmetatable({}, { __tostring = function() return "x" end })) end)
    end)]], raises("write"))
  check("receive(2.5) raises or reads 2 bytes", [[
    return in_fiber(function()
      local _, r, w = connected()
      w:write("abc\n")
      local kind, detail = try(function() return r:receive(2.5) end)
      if kind == "raised" and detail:match("receive") then return "returned", "ab" end
      return kind, detail
    end)]], { kind = "returned", pattern = "^ab$" })
  check("flushed() then close() does not end the run", [[
    return in_fiber(function()
      local _, _, w = connected()
      w:write("x")
      local d = w:flushed()
      w:close()
      coronet.sleep(0.05)
      return "returned", tostring(d ~= nil)
    end)]], { kind = "returned", pattern = "^true$" })
  check("closing a writer wakes a fiber waiting in write with closed", [[
    return in_fiber(function()
      local release = coronet.ivar()
      local _, port = helper.server(function() release.deferred:wait() end) -- never reads
      local s, _, w = helper.connect(port, { writer_buffer_size = 16 })
      assert(w:write(("x"):rep(8 * 1024 * 1024))) -- taken whole: pending was below the mark
      local waiter = coronet.spawn(function()
        return try(function() return w:write("x") end) -- waits above the mark
      end)
      coronet.sleep(0.05)
      w:close()
      local kind, detail = waiter:join(3)
      s:abort()
      release:fill()
      return kind, detail
    end)]], fails("closed"))
  check("connect with reader_buffer_size = -1 raises", connect_with("{ reader_buffer_size = -1 }"),
    raises("reader_buffer_size"))
  check("connect with writer_buffer_size = -1 raises", connect_with("{ writer_buffer_size = -1 }"),
    raises("writer_buffer_size"))
  check("connect with close_timeout = -1 raises", connect_with("{ close_timeout = -1 }"), raises("close_timeout"))
  check("connect with close_timeout = NaN raises", connect_with("{ close_timeout = 0/0 }"), raises("close_timeout"))
  check("Server.create with max_connections = -1 raises", listen_with("{ max_connections = -1 }"),
    raises("max_connections"))
  check("Server.create with backlog = -1 raises", listen_with("{ backlog = -1 }"), raises("backlog"))
  check("Server.create with max_accepts_per_batch = -1 raises", listen_with("{ max_accepts_per_batch = -1 }"),
    raises("max_accepts_per_batch"))
  check("server:close(42) raises", [[
    return in_fiber(function() local server = helper.server(helper.echo) return try(function() return server:close(42) end) end)]],
    raises("bad argument #1 to 'close' %(table of options expected, got number%)"))
  check("setoption after close raises or fails with closed", [[
    return in_fiber(function()
      local s = connected()
      s:close()
      local kind, detail = try(function() return s:setoption("keepalive", true) end)
      if kind == "raised" and detail:match("closed") then return "failed", "closed" end
      return kind, detail
    end)]], fails("closed"))
  -- The halves stay reachable (another party may have closed the socket under
  -- a handler, which must not raise for it); they say they are closed.
  check("reader() after close gives a closed reader whose reads fail with closed", [[
    return in_fiber(function()
      local s = connected()
      s:close()
      local r = s:reader()
      assert(tostring(r):match("%(closed%)"), tostring(r))
      return try(function() return r:read_line() end)
    end)]], fails("closed"))
end)
