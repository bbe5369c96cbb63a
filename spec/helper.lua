-- spec/helper.lua: shared by the busted specs. Every spec runs its body in
-- coronet.run under a time limit, on loopback with OS-chosen ports, and
-- checks that nothing is left open afterwards.
local coronet = require "coronet"
local core = require "coronet.core"

local M = {}

--- Multiplies a time constant (seconds); CORONET_TEST_TIMESCALE is larger under sanitizers.
M.scale = tonumber(os.getenv("CORONET_TEST_TIMESCALE") or "1") or 1
function M.t(seconds) return seconds * M.scale end

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

--- Counts open descriptors of this process (to catch leaks). The pid comes
-- from /proc/self/stat read here: a child's /proc/self would be the child's.
function M.open_fds()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  local p = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null | wc -l")
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

return M
