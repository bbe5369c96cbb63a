-- Seeded randomized interleaving test of the foundation; spec/chaos/chaos.lua
-- says what a round does and checks. This spec runs a fixed list of seeds,
-- fewer under CORONET_TEST_TIMESCALE > 1 or CORONET_GC_STRESS=1.
-- Long runs: CORONET_CHAOS_SEED=<first seed> CORONET_CHAOS_ROUNDS=<n> runs
-- seeds first .. first+n-1 instead of the list, e.g.
--   CORONET_CHAOS_SEED=1000 CORONET_CHAOS_ROUNDS=500 busted --lua=lua5.4 --cpath=build/?.so spec/chaos_spec.lua
-- or standalone: lua5.4 spec/chaos/chaos.lua 1000 500 (see that file).
-- A failure prints the seed and the tail of the operation log; rerun that seed alone to reproduce
-- (timing may vary: run it a few times, or under the same build).
local helper = require "helper"
local chaos = require "chaos.chaos"

local SEEDS = { 1, 2, 3, 5, 8, 13, 21, 34, 55, 79, 89, 107, 120, 144, 233, 377, 610, 987, 1597, 2584,
  4181, 6765, 10946, 17711, 28657, 46368, 75025, 121393, 196418, 317811, 514229, 832040 }

local function seeds()
  local first, rounds = tonumber(os.getenv("CORONET_CHAOS_SEED")), tonumber(os.getenv("CORONET_CHAOS_ROUNDS"))
  if first or rounds then
    local list = {}
    for seed = first or 1, (first or 1) + (rounds or 1) - 1 do list[#list + 1] = seed end
    return list
  end
  local keep = #SEEDS
  if helper.gc_stress then keep = 4 elseif helper.scale > 1 then keep = 12 end
  return { table.unpack(SEEDS, 1, keep) }
end

describe("chaos: random interleavings over loopback connections and a server", function()
  it("keep every call's documented shape, every stream's order, and leave nothing open", function()
    -- one connect first: the first lookup starts libuv's thread pool, which keeps a descriptor
    helper.run(function()
      local server, port = helper.server(function() end)
      helper.connect(port):close()
      server:close()
    end)
    local fds = helper.open_fds()
    for _, seed in ipairs(seeds()) do
      local ok, report = chaos.round(seed, { run_limit = helper.t(15) })
      assert(ok, report)
      helper.assert_clean()
    end
    assert.equal(fds, helper.open_fds())
  end)
end)
