-- spec/error_messages_spec.lua: errors a user can act on (issue 11).
--
-- 1. A sweep of the public API, found by reflection: every function member
--    of the public modules (and of the classes they hold) and every method of
--    the objects they make. Each must have a row below (or an entry, with its
--    reason, in ACCEPTS_ANYTHING), so a function added later without one
--    fails here. Each row is called, as a user writes it, with a wrong value
--    in each argument position: a table where a string or number is
--    expected, a string where a number, function, table or object is
--    expected, nil for a required argument, an object of another class as
--    self, and a wrong value for each option. Every such call must raise
--    lauxlib's "bad argument #N to 'name' (...)" (or "calling 'name' on bad
--    self"), or, for an option, a message naming the function and the
--    option; none may return or wait (a bad argument raises before anything
--    changes). Each probe runs in its own fiber with fresh objects, under a
--    time limit.
-- 2. I/O errors: tostring(err) names the operation and the address.
local coronet = require "coronet"
local core = require "coronet.core"
local helper = require "helper"

local tcp = coronet.tcp

---------------------------------------------------------------------------
-- Fixtures: the objects a probe calls, made on first use, fresh per probe.

local function connected(env)
  if not env.server_port then
    local _, port = helper.server(helper.echo)
    env.server_port = port
  end
  local s, r, w = helper.connect(env.server_port)
  rawset(env, "s", s)
  rawset(env, "r", r)
  rawset(env, "w", w)
  env.cleanup[#env.cleanup + 1] = function() s:abort() end
end

local function sleeper()
  return coronet.spawn(function() coronet.sleep(helper.t(30)) end)
end

-- A switch running in its own fiber until the probe ends.
local function running_switch(env)
  local got, stop = coronet.ivar(), coronet.ivar()
  local fiber = coronet.spawn(function()
    coronet.switch(function(sw)
      got:fill(sw)
      stop.deferred:wait()
    end)
  end)
  env.cleanup[#env.cleanup + 1] = function()
    stop:fill()
    fiber:join(helper.t(2))
  end
  return got.deferred:wait(helper.t(2))
end

local MAKERS = {
  s = connected, r = connected, w = connected,
  us = function(env)
    local us = tcp.socket()
    env.cleanup[#env.cleanup + 1] = function() us:close() end
    return us
  end,
  server = function(env)
    local server = helper.server(helper.echo)
    env.cleanup[#env.cleanup + 1] = function() server:close() end
    return server
  end,
  lst = function(env)
    local lst = assert(coronet.net.listen(coronet.address("127.0.0.1", 0)))
    env.cleanup[#env.cleanup + 1] = function() lst:close() end
    return lst
  end,
  dg = function(env)
    local dg = assert(coronet.net.datagram_socket(coronet.address("127.0.0.1", 0)))
    env.cleanup[#env.cleanup + 1] = function() dg:close() end
    return dg
  end,
  iv = function() return coronet.ivar() end,
  d = function(env) return env.iv.deferred end,
  upon = function(env) return env.d:upon(function() end) end,
  fib = function(env)
    local fib = sleeper()
    env.cleanup[#env.cleanup + 1] = function() fib:cancel() end
    return fib
  end,
  sw = running_switch,
  handle = function(env) return env.sw:on_release(function() end) end,
  proc = function(env)
    local proc, stdin, stdout = assert(coronet.process.spawn("cat"))
    env.cleanup[#env.cleanup + 1] = function()
      stdin:close()
      stdout:close()
      proc:wait(helper.t(2))
      proc:close()
    end
    return proc
  end,
  ctx = function() return assert(coronet.tls.context({ verify = false })) end,
  addr = function() return coronet.address("127.0.0.1", 1) end,
  wc = function() return tcp.Where_to_connect.of_host_and_port("127.0.0.1", 1) end,
  wl = function() return tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0)) end,
  bind_addr = function() return tcp.Bind_to_address.localhost() end,
  bind_port = function() return tcp.Bind_to_port.on_port_chosen_by_os() end,
  err = function() return coronet.errors.new("closed", "x") end,
}

local function new_env()
  local env = { coronet = coronet, tcp = tcp, net = coronet.net, tls = coronet.tls, switch = coronet.switch,
    process = coronet.process, deferred = coronet.deferred, errors = coronet.errors, where = coronet.where,
    reader = coronet.reader, writer = coronet.writer, socket = coronet.socket, tcp_server = coronet.tcp_server,
    noop = function() end, cleanup = {} }
  return setmetatable(env, { __index = function(t, key)
    local make = MAKERS[key]
    if not make then return _G[key] end
    local value = make(t)
    if value ~= nil then rawset(t, key, value) end
    return rawget(t, key)
  end })
end

local function clean(env)
  for i = #env.cleanup, 1, -1 do env.cleanup[i]() end
end

---------------------------------------------------------------------------
-- The rows. An argument is {kind, valid expression[, detail]}; a leading
-- "?" in the kind makes it optional (no nil probe). Kinds and the wrong
-- values they get:
--   s string      -> {}          (numbers are strings to Lua: not probed)
--   n number      -> "x", {}
--   f function    -> "x"
--   o object      -> "x" and detail, an object of another class
--   t table       -> "x"; detail = { option = kind } probes each option
--   sa a string or an array of strings -> true
--   fs a function or a string -> {}
--   os an object or its text -> true and detail
--   v any value   -> nothing (a value the function stores or passes on)
-- Option kinds: n, s, f, t, o (each as above); b (boolean) is not probed:
-- like Lua's own flags, any value is taken for its truth.

local function A(kind, valid, detail) return { kind = kind, valid = valid, detail = detail } end
local STR, NUM, FN, TBL = "s", "n", "f", "t"

-- {call as written, arguments...}; a call "obj:method" also gets a wrong self.
local ROWS = {
  -- coronet
  { "coronet.spawn", A(FN, "noop") },
  { "coronet.run", A(FN, "noop") },
  { "coronet.sleep", A(NUM, "0") },
  { "coronet.step", A("?n", "0") },
  { "coronet.set_logger", A("?f", "nil") },
  { "coronet.address", A(STR, "'127.0.0.1'"), A(NUM, "1") },
  { "coronet.unix_address", A(STR, "'/tmp/coronet-x.sock'") },
  { "coronet.signal", A(STR, "'SIGUSR1'") },
  { "tls.context", A(TBL, "{ verify = false }", { ca_file = "s", handshake_timeout = "n", alpn = "t" }),
    A("?s", "'client'") },
  { "coronet.any", A("o", "d", "iv") },
  { "fib:join", A("?n", "0") },
  { "fib:cancel" },
  { "fib:is_done" },
  -- deferreds
  { "deferred.of", A("v", "1") },
  { "deferred.pending_count", A("o", "iv", "fib") },
  { "iv:fill", A("v", "1") },
  { "iv:is_full" },
  { "iv:read" },
  { "d:wait", A("?n", "0") },
  { "d:is_determined" },
  { "d:peek" },
  { "d:upon", A(FN, "noop") },
  { "upon:cancel" },
  -- errors
  { "errors.new", A(STR, "'closed'"), A(STR, "'m'"), A("?os", "nil", "iv") },
  { "errors.is", A("v", "err"), A("?s", "'closed'") },
  -- where (the same tables as tcp.Where_to_connect ...)
  { "tcp.Where_to_connect.of_host_and_port", A(STR, "'127.0.0.1'"), A(NUM, "1") },
  { "tcp.Where_to_connect.of_file", A(STR, "'/tmp/coronet-x.sock'") },
  { "tcp.Where_to_connect.of_address", A("o", "addr", "iv") },
  { "tcp.Where_to_connect.to_inet_address", A("o", "addr", "iv") },
  { "tcp.Where_to_connect.to_unix_address", A("o", "coronet.unix_address('/tmp/coronet-x.sock')", "iv") },
  { "tcp.Bind_to_address.address", A(STR, "'127.0.0.1'") },
  { "tcp.Bind_to_address.all_addresses" },
  { "tcp.Bind_to_address.localhost" },
  { "tcp.Bind_to_port.on_port", A(NUM, "0") },
  { "tcp.Bind_to_port.on_port_chosen_by_os" },
  { "tcp.Where_to_listen.on_port", A(NUM, "0") },
  { "tcp.Where_to_listen.on_port_chosen_by_os" },
  { "tcp.Where_to_listen.on_file", A(STR, "'/tmp/coronet-x.sock'") },
  { "tcp.Where_to_listen.of_address", A("o", "addr", "iv") },
  { "tcp.Where_to_listen.bind_to", A("o", "bind_addr", "bind_port"), A("o", "bind_port", "bind_addr") },
  { "tcp.Where_to_listen.create", A(TBL, "{ address = addr }", { address = "o", socket_type = "s", listening_on = "f" }) },
  -- tcp
  { "tcp.connect", A("o", "wc", "addr"), A("?t", "{ timeout = 0.001 }", { timeout = "n", interrupt = "o",
    reader_buffer_size = "n", writer_buffer_size = "n", buffer_age_limit = "n", close_timeout = "n", tls = "t",
    happy_eyeballs = "t" }) },
  { "tcp.connect_sock", A("o", "wc", "addr"), A("?t", "{ timeout = 0.001 }", { timeout = "n", interrupt = "o" }) },
  { "tcp.with_connection", A("o", "wc", "addr"), A(FN, "noop"), A("?t", "{ timeout = 0.001 }", { timeout = "n" }) },
  { "tcp.socket", A("?s", "'inet'") },
  { "tcp.adopt_fd", A(NUM, "-1") },
  -- tcp_server
  { "tcp_server.create", A("o", "wl", "wc"), A(FN, "noop"), A("?t", "{}", { on_handler_error = "f",
    max_connections = "n", backlog = "n", max_accepts_per_batch = "n", reader_buffer_size = "n",
    writer_buffer_size = "n", close_timeout = "n", tls = "t" }) },
  { "tcp_server.create_sock", A("o", "wl", "wc"), A(FN, "noop"), A("?t", "{}", { max_connections = "n" }) },
  { "tcp_server.create_inet", A("o", "wl", "wc"), A(FN, "noop"), A("?t", "{}", { max_connections = "n" }) },
  { "tcp_server.create_sock_inet", A("o", "wl", "wc"), A(FN, "noop"), A("?t", "{}", { max_connections = "n" }) },
  { "server:listening_on" },
  { "server:listening_on_address" },
  { "server:listening_socket" },
  { "server:close", A("?t", "{}", { close_existing_connections = "b" }) },
  { "server:close_finished" },
  { "server:close_finished_and_handlers_determined" },
  { "server:is_closed" },
  { "server:num_connections" },
  { "server:set_drop_incoming_connections", A("?b", "false") },
  { "server:stats" },
  -- socket
  { "s:getpeername" },
  { "s:getsockname" },
  { "s:reader" },
  { "s:writer" },
  { "s:setoption", A(STR, "'tcp-nodelay'"), A("?b", "true") },
  { "s:getoption", A(STR, "'tcp-nodelay'") },
  { "s:shutdown", A("?s", "'send'") },
  { "s:getfd" },
  { "s:settimeouts", A("?n", "nil"), A("?n", "nil"), A("?n", "nil") },
  { "s:gettimeouts" },
  { "us:bind", A("o", "addr", "iv") },
  { "s:close" },
  { "s:abort" },
  { "s:is_closed" },
  { "s:close_finished", A("?n", "0") },
  { "s:stats" },
  { "s:configure", A(TBL, "{}", { reader_buffer_size = "n", writer_buffer_size = "n", buffer_age_limit = "n",
    close_timeout = "n" }) },
  { "s:copy_to", A("o", "s", "r") },
  { "s:read", A("?n", "1") },
  { "s:write", A(STR, "''") },
  { "s:starttls", A("?t", "{ verify = false, handshake_timeout = 0.001 }", { server_name = "s",
    handshake_timeout = "n", ca_file = "s", alpn = "t", context = "o" }) },
  { "s:tls_info" },
  -- reader
  { "r:read", A("?n", "1"), A("?t", "{ timeout = 0 }", { timeout = "n" }) },
  { "r:read_line", A("?t", "{ timeout = 0 }", { timeout = "n" }) },
  { "r:read_until", A(STR, "'\\n'"), A("?t", "{ timeout = 0 }", { timeout = "n", max = "n" }) },
  { "r:really_read", A(NUM, "1"), A("?t", "{ timeout = 0 }", { timeout = "n" }) },
  { "r:peek", A(NUM, "1"), A("?t", "{ timeout = 0 }", { timeout = "n" }) },
  { "r:contents", A("?t", "{ timeout = 0 }", { timeout = "n" }) },
  { "r:receive", A("?s", "'*l'"), A("?s", "''") },
  { "r:buffered" },
  { "r:capacity" },
  { "r:at_eof" },
  { "r:close" },
  { "r:is_closed" },
  { "r:socket" },
  { "r:try_read_line" },
  { "r:try_really_read", A(NUM, "1") },
  { "r:try_read", A("?n", "1") },
  { "r:try_read_until", A(STR, "'\\n'"), A("?t", "{}", { max = "n" }) },
  { "r:peek_at", A(NUM, "0"), A(NUM, "1") },
  { "r:discard", A(NUM, "0") },
  { "r:wait_activity", A("?n", "0") },
  { "r:transfer_to", A("o", "w", "r"), A("?t", "{}", { close_writer = "b" }) },
  -- writer
  { "w:write", A(STR, "''") },
  { "w:flush", A("?n", "0") },
  { "w:flushed" },
  { "w:pending" },
  { "w:hwm" },
  { "w:close" },
  { "w:is_closed" },
  { "w:socket" },
  -- switch
  { "switch.run", A(FN, "noop"), name = "switch" }, -- as users call it: coronet.switch(fn)
  { "sw:fork", A(FN, "noop") },
  { "sw:on_release", A(FN, "noop") },
  { "sw:attach", A("o", "us", "'x'") },
  { "sw:remove", A("o", "handle", "iv") },
  { "sw:fail", A("v", "'e'") },
  { "sw:is_done" },
  { "handle:remove" },
  -- process
  { "process.spawn", A(STR, "'true'"), A("?t", "{}"), A("?t", "{}", { env = "t", cwd = "s" }) },
  { "process.open_descriptor", A("o", "-1", "{}") },
  { "proc:pid" },
  { "proc:kill", A("?s", "0") },
  { "proc:wait", A("?n", "0") },
  { "proc:exit_status" },
  { "proc:close" },
  -- net
  { "net.connect", A("o", "addr", "wc"), A("?t", "{ timeout = 0.001 }", { timeout = "n", sw = "o", tls = "t" }) },
  { "net.with_tcp_connect", A(STR, "'127.0.0.1'"), A(STR, "1"), A(FN, "noop"),
    A("?t", "{ timeout = 0.001 }", { timeout = "n", addresses = "t", tls = "t" }) },
  { "net.getaddrinfo", A(STR, "'127.0.0.1'"), A("?t", "{}", { service = "s", timeout = "n" }) },
  { "net.getaddrinfo_stream", A(STR, "'127.0.0.1'"), A("?t", "{}", { service = "s" }) },
  { "net.getaddrinfo_datagram", A(STR, "'127.0.0.1'"), A("?t", "{}", { service = "s" }) },
  { "net.getnameinfo", A("o", "addr", "iv"), A("?t", "{}", { timeout = "n" }) },
  { "net.datagram_socket", A("o", "addr", "iv"), A("?t", "{}", { sw = "o" }) },
  { "net.listen", A("o", "addr", "iv"), A("?t", "{}", { backlog = "n", sw = "o" }) },
  { "net.accept", A("o", "lst", "s"), A("?t", "{}", { sw = "o" }) },
  { "net.accept_fork", A("o", "lst", "s"), A(FN, "noop"), A("?t", "{}", { sw = "o", on_error = "f" }) },
  { "net.run_server", A("o", "lst", "s"), A("fs", "noop"), A("?t", "{}", { max_connections = "n", workers = "n",
    stop = "o", on_error = "f" }) },
  { "net.load_handler", A(STR, "'coronet.tcp:connect'") },
  { "net.getsockname", A("o", "s", "iv") },
  { "net.close", A("o", "s", "iv") },
  { "net.close_finished", A("o", "s", "iv"), A("?n", "0") },
  { "lst:getsockname" },
  { "lst:fileno" },
  { "lst:close" },
  { "lst:num_connections" },
  { "lst:stats" },
  { "lst:is_closed" },
  { "lst:close_finished", A("?n", "0") },
  { "dg:send", A("o", "addr", "iv"), A("sa", "''") },
  { "dg:recv", A("?n", "1"), A("?t", "{ timeout = 0 }", { timeout = "n" }) },
  { "dg:getsockname" },
  { "dg:close" },
  { "dg:is_closed" },
  { "dg:close_finished", A("?n", "0") },
}

-- Functions that take anything, and why; or that a user never calls.
local ACCEPTS_ANYTHING = {
  ["coronet.now"] = "takes no argument",
  ["coronet.metrics"] = "takes no argument",
  ["coronet.backend_fd"] = "takes no argument",
  ["coronet.backend_timeout"] = "takes no argument",
  ["coronet.ivar"] = "takes no argument",
  ["errors.with_traceback"] = "an xpcall handler: takes any error value, as error() does",
  ["net.serve_until_stopped"] = "run_server's body: its arguments are checked by run_server",
  ["net_workers.run"] = "run_server's body with `workers`: its arguments are checked by run_server",
  ["net_workers.worker_main"] = "the entry of a worker thread, called by the binding",
  ["deferred.check_timeout"] = "a helper for coronet's modules: its `fn` and `level` name their caller",
  ["tcp.buffer_options"] = "a helper for coronet's modules: its `fn` names their caller",
  ["tcp.happy_eyeballs_delay"] = "a helper for coronet's modules: its `fn` names their caller",
  ["net.with_tls_handshake"] = "run_server's TLS step: its arguments are checked by run_server",
  ["tls.server_context"] = "tcp.Server.create's TLS step: its `tls` option is checked there",
  ["tls.starttls"] = "socket:starttls's body: probed as s:starttls",
  ["tls.connect"] = "tcp.connect's TLS step: its `tls` option is checked there",
  ["tls.accept"] = "the servers' handshake step, given the server's own context and options",
}

---------------------------------------------------------------------------
-- Reflection: every public function, by value, with a path to name it.

local MODULES = { "coronet", "tcp", "tcp_server", "reader", "writer", "socket", "deferred", "where", "net",
  "tls", "switch", "process", "errors" }
local OBJECTS = { "s", "r", "w", "us", "server", "lst", "dg", "iv", "d", "upon", "fib", "sw", "handle", "proc" }

local function add_functions(found, path, t, depth)
  for key, value in pairs(t) do
    if type(key) == "string" and not key:match("^_") then
      if type(value) == "function" then
        found[value] = found[value] or path .. "." .. key
      elseif type(value) == "table" and depth > 0 and key:match("^%u") then
        add_functions(found, path .. "." .. key, value, depth - 1)
      end
    end
  end
end

-- Every public function value -> a path naming it.
local function public_functions(env)
  local found = {}
  for _, name in ipairs(MODULES) do
    add_functions(found, name, name == "coronet" and coronet or env[name], 1)
  end
  add_functions(found, "net_workers", require "coronet.net_workers", 0)
  for _, name in ipairs(OBJECTS) do
    local mt = getmetatable(env[name])
    local methods = type(mt.__index) == "table" and mt.__index or mt
    add_functions(found, name, methods, 0)
  end
  found[coronet.errors.metatable.__index] = nil
  return found
end

---------------------------------------------------------------------------
-- Probes.

local BAD = { s = { "{}" }, n = { "'x'", "{}" }, f = { "'x'" }, o = { "'x'" }, t = { "'x'" }, sa = { "true" }, fs = { "{}" }, os = { "true" } }

-- The call text of row with args (expressions) in place.
local function call_text(row, args)
  return ("%s(%s)"):format(row[1], table.concat(args, ", "))
end

local function valid_args(row)
  local args = {}
  for i = 2, #row do args[#args + 1] = row[i].valid end
  return args
end

-- Runs `text` (a call) in a fiber with fresh fixtures: "raised", message |
-- "returned" | "waited" (still running after the time limit).
-- CORONET_TRACE_PROBES=1 prints each probe before it runs (to find one that hangs).
local TRACE = os.getenv("CORONET_TRACE_PROBES")
local function probe(text)
  if TRACE then io.stderr:write(text, "\n") end
  local env = new_env()
  -- In parentheses: a tail call would hide the function's name from the message.
  local chunk = assert(load("return (" .. text .. ")", "=probe", "t", env))
  local outcome = coronet.ivar()
  local fiber = coronet.spawn(function()
    local ok, err = pcall(chunk)
    outcome:fill(ok and "returned" or "raised", not ok and tostring(err) or nil)
  end)
  local kind, message = outcome.deferred:wait(helper.t(0.5))
  if not kind then
    fiber:cancel()
    kind = "waited"
  end
  clean(env)
  return kind, message
end

local function escape(s) return (s:gsub("%p", "%%%0")) end

-- What the message of a bad argument at position n to name must say.
local function names_argument(message, name, n)
  if n == 0 then
    return message:find("calling '" .. name .. "' on bad self", 1, true) ~= nil
      or message:find("bad argument #1 to '[%w_.:]-" .. escape(name) .. "'") ~= nil
  end
  return message:find("bad argument #" .. n .. " to '[%w_.:]-" .. escape(name) .. "'") ~= nil
end

local function names_option(message, name, option)
  return message:find(name, 1, true) ~= nil and message:find("'" .. option .. "'", 1, true) ~= nil
end

-- Probes row with args, expecting check(message); adds a line to failures if not.
local function expect(failures, text, check)
  local kind, message = probe(text)
  if kind ~= "raised" then
    failures[#failures + 1] = ("%s %s (a bad argument must raise)"):format(text, kind)
  elseif not check(message) then
    failures[#failures + 1] = ("%s raised a message naming neither the function and argument: %s"):format(text,
      message)
  end
end

local function probe_position(failures, row, name, pos, arg)
  local kind = arg.kind:gsub("^%?", "")
  local wrong = {}
  for _, v in ipairs(BAD[kind] or {}) do wrong[#wrong + 1] = v end
  if (kind == "o" or kind == "os") and arg.detail then wrong[#wrong + 1] = arg.detail end
  if not arg.kind:match("^%?") and kind ~= "v" then wrong[#wrong + 1] = "nil" end
  for _, value in ipairs(wrong) do
    local args = valid_args(row)
    args[pos] = value
    -- Trailing optional arguments are left out: nil then stands for "none given".
    expect(failures, call_text(row, args), function(message) return names_argument(message, name, pos) end)
  end
  if kind == "t" and type(arg.detail) == "table" then
    for option, option_kind in pairs(arg.detail) do
      for _, value in ipairs(BAD[option_kind] or {}) do
        local args = valid_args(row)
        -- The valid table's other fields stay; this option's is replaced.
        local fields = {}
        for field in arg.valid:gsub("^{%s*", ""):gsub("%s*}$", ""):gmatch("[^,]+") do
          field = field:match("^%s*(.-)%s*$")
          if field:match("^[%w_]+") ~= option then fields[#fields + 1] = field end
        end
        fields[#fields + 1] = option .. " = " .. value
        args[pos] = "{ " .. table.concat(fields, ", ") .. " }"
        expect(failures, call_text(row, args), function(message) return names_option(message, name, option) end)
      end
    end
  end
end

-- The receiver of "obj:method" rows, and an object of another class for it.
local OTHER = { s = "r", r = "w", w = "r", us = "r", server = "s", lst = "s", dg = "s", iv = "d", d = "iv",
  upon = "iv", fib = "d", sw = "d", handle = "d", proc = "s" }

local function probe_self(failures, row, name)
  local object = row[1]:match("^(%w+):")
  if not object then return end
  local args = valid_args(row)
  table.insert(args, 1, OTHER[object])
  local text = call_text({ row[1]:gsub(":", ".") }, args)
  expect(failures, text, function(message) return names_argument(message, name, 0) end)
end

local function sweep(rows)
  local failures = {}
  for _, row in ipairs(rows) do
    local name = row.name or row[1]:match("[%w_]+$")
    for pos = 2, #row do probe_position(failures, row, name, pos - 1, row[pos]) end
    probe_self(failures, row, name)
  end
  return failures
end

-- The rows whose call starts with one of prefixes.
local function rows_of(...)
  local selected = {}
  for _, row in ipairs(ROWS) do
    for _, prefix in ipairs({ ... }) do
      if row[1]:sub(1, #prefix) == prefix then
        selected[#selected + 1] = row
        break
      end
    end
  end
  return selected
end

local function assert_sweep(...)
  local rows = rows_of(...)
  assert.is_true(#rows > 0)
  local failures = helper.run(function() return sweep(rows) end, 120)
  assert.are.same({}, failures, #failures .. " vague or accepted misuse:\n" .. table.concat(failures, "\n"))
end

describe("error messages: every public function has a row", function()
  it("finds each function of the public modules and objects in the rows or the exceptions", function()
    local missing = helper.run(function()
      local env = new_env()
      local found = public_functions(env)
      for _, row in ipairs(ROWS) do
        local fn = assert(load("return " .. row[1]:gsub(":", "."), "=row", "t", env))()
        assert(type(fn) == "function", row[1] .. " is not a function")
        found[fn] = nil
      end
      local list = {}
      for _, path in pairs(found) do
        if not ACCEPTS_ANYTHING[path] then list[#list + 1] = path end
      end
      table.sort(list)
      clean(env)
      return list
    end)
    assert.are.same({}, missing, "no row for: " .. table.concat(missing, ", "))
  end)
end)

describe("error messages: a wrong argument raises naming the function and the argument", function()
  it("coronet, fibers and deferreds", function() assert_sweep("coronet.", "fib:", "deferred.", "iv:", "d:", "upon:") end)
  it("errors and where", function() assert_sweep("errors.", "tcp.Where", "tcp.Bind") end)
  it("tcp and tcp_server", function()
    assert_sweep("tcp.connect", "tcp.with", "tcp.socket", "tcp.adopt", "tcp.buffer", "tcp.happy", "tcp_server.",
      "server:")
  end)
  it("socket", function() assert_sweep("s:", "us:") end)
  it("reader and writer", function() assert_sweep("r:", "w:") end)
  it("switch and process", function() assert_sweep("switch.", "sw:", "handle:", "process.", "proc:") end)
  it("net", function() assert_sweep("net.", "lst:", "dg:") end)
end)

---------------------------------------------------------------------------
-- I/O errors: tostring(err) says the operation and the address.

local function assert_says(pattern, value, err, code)
  assert.is_nil(value)
  assert.is_truthy(code, "no code")
  assert.matches(pattern, tostring(err))
end

describe("error messages: an I/O error names the operation and the address", function()
  it("a refused connect (tcp.connect and net.connect)", function()
    helper.run(function()
      local port = helper.closed_port()
      assert_says("^connect to 127%.0%.0%.1:" .. port .. ": connection refused", tcp.connect(helper.to(port)))
      assert_says("^connect to 127%.0%.0%.1:" .. port .. ": connection refused",
        coronet.net.connect(coronet.address("127.0.0.1", port)))
    end)
  end)

  it("a name that does not resolve (connect and getaddrinfo)", function()
    helper.run(function()
      local where = tcp.Where_to_connect.of_host_and_port("nonexistent.invalid", 80)
      assert_says("^connect to nonexistent%.invalid:80: ", tcp.connect(where, { timeout = helper.t(5) }))
      assert_says("^getaddrinfo nonexistent%.invalid: ", coronet.net.getaddrinfo("nonexistent.invalid"))
    end, 20)
  end)

  it("a read the peer reset, and a write to a peer that is gone", function()
    helper.run(function()
      local _, port = helper.server(function(_, r) r:socket():abort() end)
      local sock, r, w = helper.connect(port)
      assert_says("^read from 127%.0%.0%.1:" .. port .. ": ", r:read_line({ timeout = helper.t(2) }))
      local ok, err, code = w:write(("x"):rep(100000))
      if ok then ok, err, code = w:flush(helper.t(2)) end
      assert_says("^%a+ to 127%.0%.0%.1:" .. port .. ": ", ok, err, code) -- "write to" or "flush to"
      sock:close()
    end)
  end)

  it("a listen on an address in use (tcp.Server.create and net.listen)", function()
    helper.run(function()
      local server, port = helper.server(helper.echo)
      local address = coronet.address("127.0.0.1", port)
      assert_says("^listen on 127%.0%.0%.1:" .. port .. ": address already in use",
        tcp.Server.create(tcp.Where_to_listen.of_address(address), function() end))
      assert_says("^listen on 127%.0%.0%.1:" .. port .. ": address already in use", coronet.net.listen(address))
      server:close()
    end)
  end)

  it("a TLS handshake that fails (a plain server answers)", function()
    helper.run(function()
      local _, port = helper.server(function(_, r) r:socket():abort() end)
      assert_says("^TLS handshake with 127%.0%.0%.1:" .. port .. ": ",
        tcp.connect(helper.to(port), { tls = { verify = false, handshake_timeout = helper.t(2) } }))
    end)
  end)
end)
