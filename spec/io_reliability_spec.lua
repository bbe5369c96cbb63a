-- spec/io_reliability_spec.lua: the I/O objects' lifetimes (issue 6): what
-- coronet.run's teardown closes is released, nothing grows across runs.
local coronet = require "coronet"
local helper = require "helper"

local function full_gc()
  collectgarbage()
  collectgarbage()
end

describe("servers closed by run's teardown", function()
  it("are released with their handler (weak-table probe)", function()
    local probe = setmetatable({}, { __mode = "k" })
    helper.run(function()
      local upvalue = {}
      probe[upvalue] = true
      helper.server(function() return upvalue end) -- left open: run's teardown closes it
    end)
    full_gc()
    assert.is_nil(next(probe))
  end)

  it("do not make memory grow over many runs", function()
    local function one_run(i)
      helper.run(function()
        local big = string.rep("h", 100 * 1024) .. i -- held by the handler only
        helper.server(function() return big end)
      end)
    end
    for i = 1, 5 do one_run(i) end -- warm up: registry slots, metatables, pools
    full_gc()
    local before = collectgarbage("count")
    for i = 1, 60 do one_run(i) end
    full_gc()
    local grown_kb = collectgarbage("count") - before
    assert.is_true(grown_kb < 1024, ("grew by %.0f KiB over 60 runs"):format(grown_kb))
  end)

  it("are released when closed explicitly too, once their close has finished", function()
    local probe = setmetatable({}, { __mode = "k" })
    helper.run(function()
      local upvalue = {}
      probe[upvalue] = true
      local server = helper.server(function() return upvalue end)
      helper.await(server:close())
    end)
    full_gc()
    assert.is_nil(next(probe))
  end)
end)

describe("a server whose close has finished", function()
  it("still answers its methods, and a connection accepted before close runs no handler", function()
    helper.run(function()
      local ran = false
      local server, port = helper.server(function() ran = true end)
      helper.await(server:close())
      full_gc()
      assert.is_true(server:is_closed())
      assert.equal(0, server:num_connections())
      assert.is_nil(coronet.tcp.connect(helper.to(port)))
      assert.is_false(ran)
    end)
  end)
end)
