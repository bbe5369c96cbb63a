-- spec/deferred_spec.lua: ivars and deferreds (fill once, wait, peek, upon,
-- ordering on the next loop turn, timeouts).
local coronet = require "coronet"
local deferred = require "coronet.deferred"
local errors = require "coronet.errors"
local helper = require "helper"

local t = helper.t

-- Lets the other fibers run: sleep(0) completes without yielding, so sleep a little.
local function settle() assert(coronet.sleep(t(0.005))) end

describe("coronet.deferred", function()
  it("an empty ivar: not full, not determined, peek returns nothing", function()
    local ivar = coronet.ivar()
    assert.are.equal(deferred.ivar, coronet.ivar)
    local d = ivar:read()
    assert.are.equal(ivar.deferred, d)
    assert.is_false(ivar:is_full())
    assert.is_false(d:is_determined())
    assert.are.equal(0, select("#", d:peek()))
  end)

  it("fill determines it; peek and wait return every value, nils included", function()
    local ivar = deferred.ivar()
    ivar:fill(1, nil, "x", nil)
    local d = ivar:read()
    assert.is_true(ivar:is_full())
    assert.is_true(d:is_determined())
    assert.are.same({ 1, nil, "x", nil, n = 4 }, table.pack(d:peek()))
    helper.run(function()
      assert.are.same({ 1, nil, "x", nil, n = 4 }, table.pack(d:wait()))
      assert.are.same({ 1, nil, "x", nil, n = 4 }, table.pack(d:wait(0)))
    end)
  end)

  it("a determined deferred can be waited on outside a fiber (no wait happens)", function()
    local d = deferred.of("ready", 2)
    assert.is_true(d:is_determined())
    local a, b = d:wait()
    assert.are.equal("ready", a)
    assert.are.equal(2, b)
  end)

  it("filling twice raises and keeps the first value", function()
    local ivar = coronet.ivar()
    ivar:fill("first")
    local ok, err = pcall(ivar.fill, ivar, "second")
    assert.is_false(ok)
    assert.matches("already filled", err, 1, true)
    assert.are.equal("first", ivar:read():peek())
    -- filling with nothing still counts
    local empty = coronet.ivar()
    empty:fill()
    assert.is_true(empty:is_full())
    assert.has_error(function() empty:fill() end)
  end)

  it("wakes a waiting fiber with the values", function()
    helper.run(function()
      local ivar = coronet.ivar()
      local f = coronet.spawn(function() return ivar:read():wait() end)
      coronet.sleep(t(0.01))
      assert.is_false(f:is_done())
      ivar:fill("v", 3)
      local a, b = f:join(t(5))
      assert.are.equal("v", a)
      assert.are.equal(3, b)
    end)
  end)

  it("runs waiters and upon callbacks in order on the next loop turn, never inside fill", function()
    helper.run(function()
      local ivar = coronet.ivar()
      local d = ivar:read()
      local order = {}
      local fibers = {}
      fibers[1] = coronet.spawn(function() local v = d:wait() order[#order + 1] = "waiter1:" .. v end)
      settle() -- waiter 1 is parked first
      d:upon(function(v) order[#order + 1] = "upon1:" .. v end)
      fibers[2] = coronet.spawn(function() local v = d:wait() order[#order + 1] = "waiter2:" .. v end)
      settle()
      d:upon(function(v) order[#order + 1] = "upon2:" .. v end)
      assert.are.same({}, order)
      ivar:fill("x")
      -- nothing ran inside fill
      assert.are.same({}, order)
      settle()
      assert.is_true(fibers[1]:is_done() and fibers[2]:is_done())
      assert.are.same({ "waiter1:x", "upon1:x", "waiter2:x", "upon2:x" }, order)
    end)
  end)

  it("upon on a determined deferred runs on the next loop turn with the values", function()
    helper.run(function()
      local got
      local d = deferred.of("a", nil, "c")
      d:upon(function(...) got = table.pack(...) end)
      assert.is_nil(got)
      settle()
      assert.are.same({ "a", nil, "c", n = 3 }, got)
      assert.has_error(function() d:upon("not a function") end)
    end)
  end)

  it("upon callbacks run in fibers and may wait", function()
    helper.run(function()
      local ivar = coronet.ivar()
      local done = coronet.ivar()
      ivar:read():upon(function(v)
        assert(coronet.sleep(t(0.005)))
        done:fill(v * 2)
      end)
      ivar:fill(21)
      assert.are.equal(42, done:read():wait(t(5)))
    end)
  end)

  it("wait with a timeout returns nil, err, \"timeout\"; a later fill still works", function()
    helper.run(function()
      local ivar = coronet.ivar()
      local d = ivar:read()
      local start = coronet.now()
      local v, err, code = d:wait(t(0.03))
      local elapsed = coronet.now() - start
      assert.is_nil(v)
      assert.are.equal("timeout", code)
      assert.is_true(errors.is(err, "timeout"))
      assert.is_true(elapsed >= t(0.03) - 0.002, ("waited %.4f s"):format(elapsed))
      assert.is_true(elapsed < t(2))
      assert.is_false(d:is_determined())
      -- a timed-out waiter left nothing behind: a new waiter and the fill work
      local f = coronet.spawn(function() return d:wait(t(5)) end)
      settle()
      ivar:fill("later")
      assert.are.equal("later", f:join(t(5)))
      assert.are.equal("later", d:wait(0))
      assert.are.equal("later", d:peek())
    end)
  end)

  it("a timed-out waiter is not woken again by the fill", function()
    helper.run(function()
      local ivar = coronet.ivar()
      local wakes = 0
      local f = coronet.spawn(function()
        local _, _, code = ivar:read():wait(t(0.01))
        wakes = wakes + 1
        assert(code == "timeout")
        -- the next wait is a sleep; the fill must not end it early
        local start = coronet.now()
        assert(coronet.sleep(t(0.05)))
        return coronet.now() - start
      end)
      coronet.sleep(t(0.02))
      ivar:fill("too late")
      local slept = f:join(t(5))
      assert.are.equal(1, wakes)
      assert.is_true(slept >= t(0.05) - 0.002, ("slept %.4f s"):format(slept))
    end)
  end)

  it("a cancelled waiter returns nil, err, \"cancelled\" and the others still get the value", function()
    helper.run(function()
      local ivar = coronet.ivar()
      local a = coronet.spawn(function() return ivar:read():wait() end)
      local b = coronet.spawn(function() return ivar:read():wait() end)
      settle()
      a:cancel()
      local _, err, code = a:join(t(5))
      assert.are.equal("cancelled", code)
      assert.is_true(errors.is(err, "cancelled"))
      ivar:fill("for b")
      assert.are.equal("for b", b:join(t(5)))
    end)
  end)

  it("rejects a negative timeout", function()
    helper.run(function()
      assert.has_error(function() coronet.ivar():read():wait(-1) end)
    end)
  end)
end)

describe("chained fills", function()
  it("a fill made by a woken waiter does not resume the next waiter inside it (no nested resumes)", function()
    helper.run(function()
      -- 1000 fibers, each waiting on its ivar and filling the next one: nested
      -- resumes would overflow the C stack ("C stack overflow") long before the end.
      local n = 1000
      local ivars = {}
      for i = 1, n + 1 do ivars[i] = coronet.ivar() end
      local depth_seen = 0
      local inside = false
      local fibers = {}
      for i = 1, n do
        fibers[i] = coronet.spawn(function()
          local v = ivars[i]:read():wait()
          assert(not inside, "resumed inside another waiter's fill")
          inside = true
          ivars[i + 1]:fill(v + 1)
          depth_seen = math.max(depth_seen, v)
          inside = false
          return v
        end)
      end
      settle()
      ivars[1]:fill(1)
      assert.are.equal(n + 1, ivars[n + 1]:read():wait(t(5)))
      assert.are.equal(n, depth_seen)
      for i = 1, n do assert.are.equal(i, fibers[i]:join(t(5))) end
    end)
  end)
end)
