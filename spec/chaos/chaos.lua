--- Seeded randomized interleaving test of the foundation (coronet.tcp,
-- reader, writer, socket, tcp.Server, fibers, deferreds).
--
-- One round: a server and a few loopback connections; several fibers run
-- random operations at once on random ends (reads of every kind with small
-- timeouts, writes up to 1 MiB, flushes, closes of every kind, cancels of
-- random fibers, server closes, deferred waits, GC steps, dropped
-- references, `<close>` scopes, stray coroutine.resume, waits inside
-- table.sort comparators). Checked:
--   * every call returns a documented shape (value, or nil, err, code with
--     code in the call's set) or raises a documented misuse error;
--   * what a peer reads is a prefix of what was accepted by the writer, in
--     order (each direction is a keyed window of one random byte string, so
--     a byte from another connection, a lost or a duplicated byte shows);
--   * coronet.run returns within a bound; afterwards core.live() == 0 and
--     core.fiber_count() == 0.
-- Standalone (long runs):
--   lua5.4 spec/chaos/chaos.lua [first_seed] [rounds]
-- with LUA_CPATH=build/?.so and LUA_PATH="lua/?.lua;lua/?/init.lua;spec/?.lua;;"
-- (or CORONET_CHAOS_SEED / CORONET_CHAOS_ROUNDS, as spec/chaos_spec.lua reads).
local coronet = require "coronet"
local core = require "coronet.core"
local errors = require "coronet.errors"

local M = {}

-- The byte source: one random string of a length no write reaches; a
-- direction reads it from its own key (offset) on, wrapping around.
local P = (1 << 20) + 4099
local BASE
local function base()
  if BASE then return BASE end
  local x, parts, chunk = 0x2545F491, {}, {}
  for i = 1, P do
    x = (x * 1103515245 + 12345) & 0x7fffffff
    chunk[#chunk + 1] = (x >> 16) & 0xff
    if #chunk == 200 or i == P then
      parts[#parts + 1] = string.char(table.unpack(chunk))
      chunk = {}
    end
  end
  BASE = table.concat(parts)
  return BASE
end

local function window(key, off, n)
  local b = base()
  local out, start = {}, (key + off) % P
  while n > 0 do
    local take = math.min(n, P - start)
    out[#out + 1] = b:sub(start + 1, start + take)
    n, start = n - take, 0
  end
  return table.concat(out)
end
M.window = window

-- A small deterministic PRNG per round (math.random is left alone).
local function prng(seed)
  local s = seed & 0xffffffff
  if s == 0 then s = 0x9e3779b9 end
  return function(a, b)
    s = s ~ ((s << 13) & 0xffffffff)
    s = s ~ (s >> 17)
    s = s ~ ((s << 5) & 0xffffffff)
    if not a then return s / 4294967296 end
    if not b then a, b = 1, a end
    return a + s % (b - a + 1)
  end
end

-- Raised misuse errors the contract documents (matched against the message).
local MISUSE = {
  "reader is closed", "writer is closed", "socket was released", "server was released",
  "the fiber cannot yield here", "stray coroutine.resume", "was cancelled but keeps yielding",
  "this ivar is already filled",
}
local function documented_raise(msg)
  msg = tostring(msg)
  for _, m in ipairs(MISUSE) do if msg:find(m, 1, true) then return true end end
  return false
end

local function set(...)
  local t = {}
  for _, k in ipairs({ ... }) do t[k] = true end
  return t
end
local READ_CODES = set("closed", "timeout", "busy", "cancelled", "ECONNRESET")
local LINE_CODES = set("closed", "timeout", "busy", "cancelled", "ECONNRESET", "line_too_long")
local WRITE_CODES = set("closed", "timeout", "busy", "cancelled", "stalled", "EPIPE", "ECONNRESET")
local WAIT_CODES = set("timeout", "cancelled")
local RECEIVE_CODES = set("closed", "timeout", "busy", "line_too_long", "cancelled", "ECONNRESET")

function M.round(seed, opts)
  opts = opts or {}
  local rand = prng(seed)
  local log, nlog, LOGN = {}, 0, opts.log_size or 80
  local failure
  local function note(fmt, ...)
    nlog = nlog + 1
    log[(nlog - 1) % LOGN + 1] = ("%d %.4f "):format(nlog, core.now()) .. fmt:format(...)
  end
  local function fail(fmt, ...)
    local msg = fmt:format(...)
    if not failure then failure = msg end
    note("FAIL %s", msg)
  end
  local function tail()
    local out = {}
    for i = math.max(1, nlog - LOGN + 1), nlog do out[#out + 1] = log[(i - 1) % LOGN + 1] end
    return table.concat(out, "\n")
  end

  local nconn = rand(1, 3)
  local nworkers = opts.workers or rand(2, 6)
  local nops = opts.ops or rand(20, 60)
  local ends = {}       -- every connection end: {name, sock, reader, writer, inp, out}
  local workers = {}    -- {fiber, co}
  local server, port
  local pending = {}    -- peer port -> ivar of the client's record
  local stop = coronet.ivar()

  local function dir(name)
    return { name = name, key = rand(0, P - 1), accepted = 0, consumed = 0 }
  end

  -- Checks read data against the direction; `consume` advances it.
  local function check_data(e, data, consume, what)
    local d = e.inp
    if d.desync then return end
    if d.consumed + #data > d.accepted then
      fail("%s %s: read %d bytes past what was accepted (%d + %d > %d)", e.name, what, #data,
        d.consumed, #data, d.accepted)
      return
    end
    if data ~= window(d.key, d.consumed, #data) then
      fail("%s %s: %d bytes at offset %d differ from what was written", e.name, what, #data, d.consumed)
      return
    end
    if consume then d.consumed = d.consumed + #data end
  end

  local function check_fail(e, what, codes, v, err, code)
    if v ~= nil then return true end
    if not codes[code] then fail("%s %s: undocumented code %s (%s)", e.name, what, tostring(code), tostring(err)) end
    if not errors.is(err, code) then fail("%s %s: err is not an error value of code %s: %s", e.name, what, tostring(code), tostring(err)) end
    return false
  end

  local function timeout_arg()
    local r = rand(1, 4)
    if r == 1 then return 0 elseif r == 2 then return rand() * 0.02 elseif r == 3 then return 0.05 end
    return nil
  end

  local ops = {}
  function ops.read(e)
    local max, t = rand(1, 70000), timeout_arg()
    local v, err, code = e.reader:read(max, t)
    note("%s read(%d,%s) -> %s %s", e.name, max, tostring(t), v and #v or "nil", tostring(code))
    if check_fail(e, "read", READ_CODES, v, err, code) then
      if type(v) ~= "string" or #v < 1 or #v > max then fail("%s read: bad value %s", e.name, type(v)) return end
      check_data(e, v, true, "read")
    end
  end
  function ops.read_line(e)
    local t = timeout_arg()
    local v, err, code = e.reader:read_line(t)
    note("%s read_line(%s) -> %s %s", e.name, tostring(t), v and #v or "nil", tostring(code))
    if check_fail(e, "read_line", LINE_CODES, v, err, code) then
      local d = e.inp
      if d.desync then return end
      check_data(e, v, true, "read_line")
      local term = window(d.key, d.consumed, 2)
      if term:sub(1, 1) == "\n" then d.consumed = d.consumed + 1
      elseif term == "\r\n" then d.consumed = d.consumed + 2
      else fail("%s read_line: line not followed by its terminator (next bytes %q, accepted %d, at %d)", e.name,
        window(d.key, d.consumed, 4), d.accepted, d.consumed) end
      if d.consumed > d.accepted then fail("%s read_line: terminator past accepted bytes", e.name) end
    end
  end
  function ops.really_read(e)
    local n, t = rand(1, 3) == 1 and rand(1, 200000) or rand(1, 300), timeout_arg()
    local v, err, code = e.reader:really_read(n, t)
    note("%s really_read(%d,%s) -> %s %s", e.name, n, tostring(t), v and #v or "nil", tostring(code))
    if check_fail(e, "really_read", READ_CODES, v, err, code) then
      if #v ~= n then fail("%s really_read: %d bytes, not %d", e.name, #v, n) end
      check_data(e, v, true, "really_read")
    end
  end
  function ops.peek(e)
    local n, t = rand(1, 2000), timeout_arg()
    local v, err, code = e.reader:peek(n, t)
    note("%s peek(%d,%s) -> %s %s", e.name, n, tostring(t), v and #v or "nil", tostring(code))
    if check_fail(e, "peek", LINE_CODES, v, err, code) then
      if #v ~= n then fail("%s peek: %d bytes, not %d", e.name, #v, n) end
      check_data(e, v, false, "peek")
    end
  end
  function ops.contents(e)
    local t = timeout_arg()
    local v, err, code = e.reader:contents(t)
    note("%s contents(%s) -> %s %s", e.name, tostring(t), v and #v or "nil", tostring(code))
    if check_fail(e, "contents", LINE_CODES, v, err, code) then check_data(e, v, true, "contents") end
  end
  -- receive("*l") drops every CR (as LuaSocket does): matches `got` against
  -- the raw bytes from the consumed offset, skipping CRs; returns the raw
  -- length matched, or nil after failing.
  local function match_without_cr(e, got, what)
    local d = e.inp
    local raw = window(d.key, d.consumed, math.min(P - 1, #got * 2 + 4096))
    local i = 1
    for j = 1, #got do
      while raw:byte(i) == 13 do i = i + 1 end
      if raw:byte(i) ~= got:byte(j) then
        fail("%s %s: byte %d differs from what was written (offset %d)", e.name, what, j, d.consumed)
        return nil, raw
      end
      i = i + 1
    end
    return i - 1, raw
  end
  function ops.receive(e)
    local r = rand(1, 3)
    local pattern = r == 1 and "*l" or r == 2 and "*a" or rand(1, 5000)
    local v, code, partial = e.reader:receive(pattern)
    note("%s receive(%s) -> %s %s %s", e.name, tostring(pattern), v and #v or "nil", tostring(code),
      partial and #partial or "-")
    local d = e.inp
    if d.desync then return end
    if v ~= nil then
      if type(v) ~= "string" then fail("%s receive: value %s", e.name, type(v)) return end
      if pattern ~= "*l" then
        check_data(e, v, true, "receive")
        if type(pattern) == "number" and #v ~= pattern then fail("%s receive(%d): %d bytes", e.name, pattern, #v) end
        return
      end
      local k, raw = match_without_cr(e, v, "receive *l")
      if not k then return end
      while raw:byte(k + 1) == 13 do k = k + 1 end
      if raw:byte(k + 1) ~= 10 then fail("%s receive *l: line not followed by its terminator", e.name) return end
      d.consumed = d.consumed + k + 1
      if d.consumed > d.accepted then fail("%s receive *l: read past accepted bytes", e.name) end
      return
    end
    if not RECEIVE_CODES[code] then fail("%s receive: undocumented code %s", e.name, tostring(code)) return end
    if type(partial) ~= "string" then fail("%s receive: partial is %s", e.name, type(partial)) return end
    if code == "busy" or code == "line_too_long" then
      if partial ~= "" then fail("%s receive %s: partial %d bytes (should consume nothing)", e.name, code, #partial) end
      return
    end
    if pattern ~= "*l" then check_data(e, partial, true, "receive partial") return end
    local k, raw = match_without_cr(e, partial, "receive *l partial")
    if not k then return end
    -- CRs right after the partial may or may not have been buffered (and so consumed)
    if raw:byte(k + 1) == 13 then d.desync = true end
    d.consumed = d.consumed + k
    if d.consumed > d.accepted then fail("%s receive *l partial: read past accepted bytes", e.name) end
  end
  function ops.write(e)
    local r, n = rand(1, 10), 0
    if r <= 6 then n = rand(1, 200) elseif r <= 9 then n = rand(1, 70000) else n = rand(1, 1 << 20) end
    local d = e.out
    local before = d.accepted
    local data = window(d.key, before, n)
    local pieces = data
    if rand(1, 3) == 1 and n > 2 then
      local cut = rand(1, n - 1)
      pieces = { data:sub(1, cut), data:sub(cut + 1) }
    end
    local v, err, code = e.writer:write(pieces)
    note("%s write(%d) -> %s %s", e.name, n, tostring(v), tostring(code))
    if v ~= nil and v ~= true then fail("%s write: returned %s", e.name, tostring(v)) end
    if check_fail(e, "write", WRITE_CODES, v, err, code) then
      if d.accepted ~= before then fail("%s write: another write was accepted while this one waited", e.name) end
      d.accepted = before + n
    end
  end
  function ops.flush(e)
    local t = timeout_arg()
    local v, err, code = e.writer:flush(t)
    note("%s flush(%s) -> %s %s", e.name, tostring(t), tostring(v), tostring(code))
    if v ~= nil and v ~= true then fail("%s flush: returned %s", e.name, tostring(v)) end
    check_fail(e, "flush", WRITE_CODES, v, err, code)
  end
  function ops.flushed(e)
    local dfd = e.writer:flushed()
    local v, err, code = dfd:wait(timeout_arg())
    note("%s flushed:wait -> %s %s", e.name, tostring(v), tostring(code))
    if v == nil and not WRITE_CODES[code] then fail("%s flushed: undocumented code %s", e.name, tostring(code)) end
    if v == nil and not errors.is(err, code) then fail("%s flushed: bad err", e.name) end
  end
  function ops.configure(e)
    local size = rand(1, 3) == 1 and rand(1, 64) or rand(1, 1 << 18)
    local o = { writer_buffer_size = size }
    if rand(1, 3) == 1 then o.reader_buffer_size = rand(1, 2) == 1 and rand(1, 300) or rand(1, 1 << 17) end
    if rand(1, 4) == 1 then o.close_timeout = rand(1, 2) == 1 and 0 or rand() * 0.1 end
    e.sock:configure(o)
    local t = rand(1, 2) == 1 and false or rand() * 0.05
    e.sock:settimeouts(nil, t, t)
    note("%s configure(wbs=%d, rbs=%s, ct=%s, t=%s)", e.name, size, tostring(o.reader_buffer_size),
      tostring(o.close_timeout), tostring(t))
  end
  function ops.handler_return(e)
    if not e.leave then return end
    note("%s handler returns", e.name)
    if not e.leave:is_full() then e.leave:fill() end
  end
  function ops.upon_read(e)
    note("%s read from an upon callback", e.name)
    local iv = coronet.ivar()
    local done = coronet.ivar()
    iv.deferred:upon(function()
      if not e.sock then done:fill() return end -- dropped meanwhile
      local ok, err = pcall(ops[rand(1, 2) == 1 and "read" or "peek"], e)
      if not ok and not documented_raise(err) then fail("upon read raised: %s", tostring(err)) end
      done:fill()
    end)
    iv:fill()
    done.deferred:wait(1)
  end
  function ops.close_reader(e) note("%s reader:close", e.name) e.reader:close() end
  function ops.close_writer(e) note("%s writer:close", e.name) e.writer:close() end
  function ops.close(e) note("%s socket:close", e.name) e.sock:close() end
  function ops.abort(e) note("%s abort", e.name) e.sock:abort() end
  function ops.shutdown(e)
    local how = rand(1, 2) == 1 and "send" or "receive"
    note("%s shutdown(%s)", e.name, how)
    e.sock:shutdown(how)
  end
  function ops.close_finished(e)
    local t = timeout_arg() or 0.05
    local v, err, code = e.sock:close_finished(t)
    note("%s close_finished(%s) -> %s %s", e.name, tostring(t), tostring(v), tostring(code))
    if v ~= nil and v ~= true then fail("%s close_finished: returned %s", e.name, tostring(v)) end
    check_fail(e, "close_finished", WAIT_CODES, v, err, code)
  end
  function ops.close_scope(e)
    note("%s <close> scope", e.name)
    local s <close> = e.sock
    if rand(1, 2) == 1 then ops.read(e) else ops.write(e) end
  end
  function ops.drop(e)
    note("%s drop references", e.name)
    for i, x in ipairs(ends) do if x == e then table.remove(ends, i) break end end
    e.sock, e.reader, e.writer = nil, nil, nil
    collectgarbage(rand(1, 2) == 1 and "collect" or "step")
  end

  local function pick_end()
    if #ends == 0 then return nil end
    return ends[rand(1, #ends)]
  end

  local global = {}
  function global.sleep0() note("sleep(0)") coronet.sleep(0) end
  function global.gc() note("gc") collectgarbage(rand(1, 3) == 1 and "collect" or "step") end
  function global.cancel()
    local w = workers[rand(1, #workers)]
    note("cancel worker %d", w.id)
    w.fiber:cancel()
  end
  function global.stray_resume()
    local w = workers[rand(1, #workers)]
    if not w.co or w.co == coroutine.running() or coroutine.status(w.co) ~= "suspended" then return end
    -- documented refusal: the waiting call returns nil, message to the stray resumer
    local ok, a, b = coroutine.resume(w.co, "stray")
    note("stray resume worker %d -> %s %s", w.id, tostring(ok), tostring(a))
    if not (ok and a == nil and tostring(b):find("stray coroutine.resume", 1, true)) then
      fail("stray coroutine.resume of worker %d: %s, %s, %s", w.id, tostring(ok), tostring(a), tostring(b))
    end
  end
  function global.server_close()
    local existing = rand(1, 2) == 1
    note("server:close(existing=%s)", tostring(existing))
    local fin = server:close({ close_existing_connections = existing })
    local v, err, code = fin:wait(timeout_arg())
    note("server close wait -> %s %s", tostring(v), tostring(code))
    if v == nil and not WAIT_CODES[code] then fail("server close_finished: code %s", tostring(code)) end
    if v == nil and not errors.is(err, code) then fail("server close_finished: bad err") end
  end
  function global.deferred()
    local iv = coronet.ivar()
    local t = rand() * 0.01
    coronet.spawn(function() coronet.sleep(t) if not iv:is_full() then iv:fill(1, 2) end end)
    local v, err, code = iv.deferred:wait(timeout_arg())
    note("deferred wait -> %s %s", tostring(v), tostring(code))
    if v == nil and not WAIT_CODES[code] then fail("deferred wait: code %s", tostring(code)) end
    if v ~= nil and v ~= 1 then fail("deferred wait: value %s", tostring(v)) end
  end
  function global.sort_wait()
    note("wait inside table.sort")
    local t = { 3, 1, 2 }
    table.sort(t, function(a, b) coronet.sleep(0) return a < b end)
    fail("a wait inside table.sort's comparator did not raise")
  end

  local END_OPS = { "read", "read_line", "really_read", "peek", "contents", "receive", "write", "write", "write",
    "flush", "flushed", "configure", "close_reader", "close_writer", "close", "abort", "shutdown", "close_finished",
    "close_scope", "drop", "handler_return", "upon_read" }
  local GLOBAL_OPS = { "sleep0", "gc", "cancel", "stray_resume", "server_close", "deferred", "sort_wait", "connect" }
  -- Rare, destructive ops are weighted down so that data flows most of the time.
  local RARE = { close_reader = 4, close_writer = 4, close = 6, abort = 6, shutdown = 4, drop = 8, close_scope = 6,
    cancel = 4, server_close = 6, handler_return = 6 }

  local function choose(list)
    while true do
      local name = list[rand(1, #list)]
      local w = RARE[name]
      if not w or rand(1, w * (opts.rarity or 1)) == 1 then return name end
    end
  end

  local function run_op(fiber)
    local global_op = rand(1, 5) == 1
    local name, e
    if global_op then name = choose(GLOBAL_OPS) else
      e = pick_end()
      if not e then coronet.sleep(0.001) return end
      name = choose(END_OPS)
    end
    local ok, err = pcall(global_op and global[name] or ops[name], e)
    if not ok then
      note("%s raised: %s", name, tostring(err):match("[^\n]*"))
      if not documented_raise(err) then fail("%s raised an undocumented error: %s", name, tostring(err)) end
    end
    return fiber.core:is_cancelled()
  end

  local function worker(id)
    local me = workers[id]
    me.co = coroutine.running()
    for _ = 1, nops do
      if failure or stop:is_full() then return end
      if run_op(me.fiber) then note("worker %d ends (cancelled)", id) return end
    end
  end

  local function client_end(i, sock, r, w)
    local e = { name = "c" .. i, sock = sock, reader = r, writer = w, out = dir("c" .. i .. ">s"), inp = dir("s>c" .. i) }
    return e
  end

  local connect_one
  function global.connect()
    if #ends > 12 then return end
    note("connect")
    connect_one(#ends + 100 + rand(1, 1000))
  end

  local function handler(_, sock)
    sock:settimeouts(nil, 0.01 + rand() * 0.1, 0.01 + rand() * 0.1)
    local peer = sock:getpeername()
    if not peer then return end
    local slot = pending[peer.port]
    if not slot then slot = coronet.ivar() pending[peer.port] = slot end
    local c = slot.deferred:wait(2)
    if not c then return end
    local e = { name = "s" .. c.i, sock = sock, reader = sock:reader(), writer = sock:writer(), out = c.inp, inp = c.out,
      leave = coronet.ivar() }
    ends[#ends + 1] = e
    note("server end %s", e.name)
    local any = coronet.ivar()
    stop.deferred:upon(function() if not any:is_full() then any:fill() end end)
    e.leave.deferred:upon(function() if not any:is_full() then any:fill() end end)
    any.deferred:wait()
  end

  connect_one = function(i)
    local sock, r, w, code = coronet.tcp.connect(coronet.tcp.Where_to_connect.of_host_and_port("127.0.0.1", port),
      { writer_buffer_size = rand(1, 1 << 17), close_timeout = rand(1, 2) == 1 and 0.05 or 1, timeout = 1 })
    if not sock then
      note("connect %d -> %s", i, tostring(w))
      -- refused once the server closed; a listener closed mid-handshake may reset or time out
      if not (server:is_closed() and (w == "ECONNREFUSED" or w == "ECONNRESET" or w == "timeout" or w == "cancelled"))
        and w ~= "cancelled" then
        fail("connect %d failed: %s %s", i, tostring(r), tostring(w))
      end
      return
    end
    sock:settimeouts(nil, 0.01 + rand() * 0.1, 0.01 + rand() * 0.1)
    local e = client_end(i, sock, r, w)
    e.i = i
    ends[#ends + 1] = e
    local lport = sock:getsockname().port
    local slot = pending[lport]
    if not slot then slot = coronet.ivar() pending[lport] = slot end
    slot:fill(e)
  end

  local function main()
    server, port = coronet.tcp.Server.create_sock(
      coronet.tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0)), handler,
      { on_handler_error = "raise", writer_buffer_size = rand(1, 1 << 17) })
    port = server:listening_on()
    for i = 1, nconn do connect_one(i) end
    for id = 1, nworkers do
      workers[id] = { id = id }
      workers[id].fiber = coronet.spawn(worker, id)
    end
    for id = 1, nworkers do workers[id].fiber:join(opts.worker_limit or 8) end
    note("workers joined")
    stop:fill()
    for _, e in ipairs(ends) do if e.sock then e.sock:close() end end
    server:close({ close_existing_connections = true }):wait(5)
  end

  local t0 = os.clock()
  local ok, err = pcall(coronet.run, main)
  local elapsed = os.clock() - t0
  if not ok then fail("coronet.run raised: %s", tostring(err)) end
  if core.fiber_count() ~= 0 then fail("fibers left: %d", core.fiber_count()) end
  if core.live() ~= 0 then fail("core objects left: %d", core.live()) end
  if elapsed > (opts.run_limit or 15) then fail("coronet.run took %.1f s of CPU", elapsed) end
  if opts.verbose then print(("seed %d: %d operations\n%s"):format(seed, nlog, tail())) end
  if failure then
    return false, ("chaos seed %d failed: %s\n--- operation log tail ---\n%s"):format(seed, failure, tail())
  end
  return true
end

-- Standalone: lua5.4 spec/chaos/chaos.lua [first_seed] [rounds]
if arg and arg[0] and arg[0]:match("chaos/chaos%.lua$") then
  if os.getenv("CORONET_GC_STRESS") == "1" then collectgarbage("incremental", 1, 100) end
  local first = tonumber(arg[1] or os.getenv("CORONET_CHAOS_SEED") or "1")
  local rounds = tonumber(arg[2] or os.getenv("CORONET_CHAOS_ROUNDS") or "100")
  local failed = 0
  for seed = first, first + rounds - 1 do
    local ok, report = M.round(seed)
    if not ok then
      failed = failed + 1
      io.stderr:write(report, "\n\n")
    end
  end
  print(("chaos: %d rounds from seed %d, %d failed"):format(rounds, first, failed))
  os.exit(failed == 0 and 0 or 1)
end

return M
