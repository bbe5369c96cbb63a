-- spec/soak/soak.lua: an echo server and hundreds of concurrent clients on
-- loopback, in rounds. Each client connects, sends a random slice (1 B ..
-- 256 KiB) of a random pool in random pieces while reading the echo back,
-- and compares every byte it gets with what it sent. About one transfer in
-- ten the client cuts it short (close or abort, at a random point), and the
-- server cuts one in fifty (returns, or aborts, mid-echo); what did arrive
-- must still be a correct prefix. After each round (its own coronet.run,
-- everything closed) the descriptor count, the Lua heap after a full GC and
-- the RSS must be back at the baseline taken after the first round.
--
-- Run by ctest (label soak): ctest -L soak. Settings by environment:
--   CORONET_SOAK_SECONDS      total duration (ctest: 12 s, 6 s under the sanitizers)
--   CORONET_SOAK_CONNECTIONS  concurrent clients (default 200)
--   CORONET_SOAK_RSS_SLACK_MB RSS growth allowed over the baseline (default 32)
--   CORONET_SOAK_SEED         random seed (default: the time; printed)
-- Long mode, e.g. half an hour with 500 clients, from the repository root:
--   CORONET_SOAK_SECONDS=1800 CORONET_SOAK_CONNECTIONS=500 LUA_CPATH='build/?.so;;' lua5.4 spec/soak/soak.lua
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
local coronet = require "coronet"
local helper = require "helper"
local tcp = coronet.tcp

local function env_number(name, default)
  return tonumber(os.getenv(name) or "") or default
end

local SECONDS = env_number("CORONET_SOAK_SECONDS", 12)
local CONNECTIONS = math.tointeger(env_number("CORONET_SOAK_CONNECTIONS", 200))
local RSS_SLACK = env_number("CORONET_SOAK_RSS_SLACK_MB", 32) * 1024 * 1024
local SEED = math.tointeger(env_number("CORONET_SOAK_SEED", os.time()))
local MAX_SIZE = 256 * 1024
local ROUND_SECONDS = math.min(30, math.max(1, SECONDS / 4))
local ROUNDS = math.max(3, math.floor(SECONDS / ROUND_SECONDS))
local IO_TIMEOUT = helper.t(20) -- a read or connect slower than this is a hang

math.randomseed(SEED)

-- Random bytes, twice the largest transfer so any slice start works.
local function random_pool(n)
  local parts = {}
  for i = 1, n // 8 do parts[i] = string.pack("<i8", math.random(math.mininteger, math.maxinteger)) end
  return table.concat(parts)
end
local POOL = random_pool(2 * MAX_SIZE)

local totals = { transfers = 0, bytes = 0, corrupt = 0, client_cuts = 0, server_cuts = 0, failures = {} }

local function fail(msg)
  totals.failures[#totals.failures + 1] = msg
end

-- The server: echoes what it reads; now and then ends the connection early.
local function echo(_, reader, writer)
  while true do
    local data = reader:read(64 * 1024)
    if not data then return end
    local r = math.random(1000)
    if r <= 10 then return end -- graceful close mid-echo
    if r <= 20 then writer:socket():abort() return end
    if not writer:write(data) then return end
  end
end

local function send_pieces(writer, payload)
  local pos = 1
  while pos <= #payload do
    local n = math.random(1, 64 * 1024)
    if not writer:write(payload:sub(pos, pos + n - 1)) then return end
    pos = pos + n
  end
  writer:flush()
end

-- Reads the echo until `want` bytes arrived or the server ended early;
-- compares every piece. Returns the count of bytes received.
local function receive_echo(reader, payload, want)
  local got = 0
  while got < want do
    local data, err, code = reader:read(math.min(64 * 1024, want - got), { timeout = IO_TIMEOUT })
    if not data then
      if code == "closed" or code == "ECONNRESET" then
        totals.server_cuts = totals.server_cuts + 1
      else
        fail("read: " .. tostring(err))
      end
      return got
    end
    if data ~= payload:sub(got + 1, got + #data) then
      totals.corrupt = totals.corrupt + 1
      fail(("corrupt echo at byte %d of %d"):format(got, #payload))
      return got
    end
    got = got + #data
  end
  return got
end

local function one_transfer(where)
  local sock, reader, writer = tcp.connect(where, { timeout = IO_TIMEOUT })
  if not sock then
    fail("connect: " .. tostring(reader))
    return
  end
  local size = math.random(1, MAX_SIZE)
  local start = math.random(1, #POOL - size + 1)
  local payload = POOL:sub(start, start + size - 1)
  local cut = math.random(10) == 1 and math.random(0, size) or nil
  local sender = coronet.spawn(send_pieces, writer, payload)
  local got = receive_echo(reader, payload, cut or size)
  if cut then
    totals.client_cuts = totals.client_cuts + 1
    if math.random(2) == 1 then sock:abort() else sock:close() end
  end
  sock:close()
  sender:join(IO_TIMEOUT)
  if not sock:close_finished(IO_TIMEOUT) then fail("close_finished timed out") end
  totals.transfers = totals.transfers + 1
  totals.bytes = totals.bytes + got
end

local function round()
  helper.run(function()
    local server, port = helper.server(echo, { on_handler_error = "raise" })
    local where = helper.to(port)
    local deadline = coronet.now() + ROUND_SECONDS
    local clients = {}
    for i = 1, CONNECTIONS do
      clients[i] = coronet.spawn(function()
        while coronet.now() < deadline do one_transfer(where) end
      end)
    end
    for i = 1, CONNECTIONS do clients[i]:join() end
    server:close({ close_existing_connections = true }):wait(IO_TIMEOUT)
  end, ROUND_SECONDS + 4 * IO_TIMEOUT)
end

local function rss()
  local f = assert(io.open("/proc/self/statm"))
  local _, resident = f:read("n", "n")
  f:close()
  return resident * 4096
end

local function measure()
  collectgarbage("collect")
  collectgarbage("collect")
  return { fds = helper.open_fds(), heap = collectgarbage("count") * 1024, rss = rss() }
end

print(("soak: %d rounds of %.1f s, %d clients, seed %d"):format(ROUNDS, ROUND_SECONDS, CONNECTIONS, SEED))
local baseline
for i = 1, ROUNDS do
  local t0 = coronet.now()
  local before = totals.transfers
  round()
  local m = measure()
  print(("round %d: %.1f s, %d transfers, fds %d, heap %.0f KiB, rss %.1f MiB"):format(
    i, coronet.now() - t0, totals.transfers - before, m.fds, m.heap / 1024, m.rss / 2 ^ 20))
  if totals.transfers == before then fail(("round %d: no transfer finished"):format(i)) end
  if i == 1 then
    baseline = m -- after the first round: pools, caches and the allocator have warmed up
  else
    if m.fds ~= baseline.fds then fail(("round %d: %d descriptors, baseline %d"):format(i, m.fds, baseline.fds)) end
    if m.heap > baseline.heap * 1.25 + 256 * 1024 then
      fail(("round %d: Lua heap %.0f KiB, baseline %.0f KiB"):format(i, m.heap / 1024, baseline.heap / 1024))
    end
    if m.rss > baseline.rss + RSS_SLACK then
      fail(("round %d: RSS %.1f MiB, baseline %.1f MiB"):format(i, m.rss / 2 ^ 20, baseline.rss / 2 ^ 20))
    end
  end
end

print(("soak: %d transfers, %.1f MiB echoed and compared, %d corrupt, %d cut by clients, %d by the server"):format(
  totals.transfers, totals.bytes / 2 ^ 20, totals.corrupt, totals.client_cuts, totals.server_cuts))
for _, msg in ipairs(totals.failures) do print("FAIL: " .. msg) end
if #totals.failures > 0 then os.exit(1) end
print("soak: passed")
