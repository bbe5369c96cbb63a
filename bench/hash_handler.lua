-- hash_handler.lua: the CPU-heavy handler of the parallel-server row
-- (bench/workers_echo.lua): it hashes every request BENCH_HASH_ROUNDS times
-- (FNV-1a, default 40 rounds) before echoing it, so that the server, not the
-- network, is the bottleneck. Each worker state requires this module.
local M = {}

local ROUNDS = tonumber(os.getenv("BENCH_HASH_ROUNDS") or "40") or 40

local function digest(data, rounds)
  local h = 2166136261
  for _ = 1, rounds do
    for i = 1, #data do h = ((h ~ data:byte(i)) * 16777619) & 0xffffffff end
  end
  return h
end

--- Echoes what arrives, hashing each read first.
function M.serve(flow)
  local reader, writer = flow:reader(), flow:writer()
  while true do
    local data = reader:read()
    if not data then return end
    M.last = digest(data, ROUNDS)
    if not writer:write(data) then return end
  end
end

return M
