-- switch_spec: coronet.switch, Eio's Switch: nothing leaks out of a switch,
-- the first error wins, later ones are attached, and the caller's fiber is
-- not left cancelled.
local coronet = require "coronet"
local errors = require "coronet.errors"
local helper = require "helper"

local t = helper.t

-- A resource whose close takes `delay` seconds to finish; events go to log.
local function resource(log, name, delay)
  local r = { closed = false }
  function r:close()
    log[#log + 1] = "close " .. name
    self.closed = true
  end
  function r:close_finished()
    coronet.sleep(delay or 0)
    log[#log + 1] = "finished " .. name
    return true
  end
  return r
end

describe("coronet.switch", function()
  it("is coronet.switch and coronet.switch.run, and requires a fiber", function()
    assert.are.equal(require "coronet.switch", coronet.switch)
    assert.has_error(function() coronet.switch(function() end) end,
      "coronet.switch must run in a coronet fiber: start one with coronet.spawn or coronet.run")
    helper.run(function()
      assert.are.same({ 1, 2 }, { coronet.switch(function(_, a, b) return a, b end, 1, 2) })
      assert.has_error(function() coronet.switch("x") end)
    end)
  end)

  it("returns fn's results only after every forked fiber has finished", function()
    helper.run(function()
      local finished = {}
      local r = coronet.switch(function(sw)
        for i = 1, 3 do
          sw:fork(function()
            coronet.sleep(t(0.02) * i)
            finished[#finished + 1] = i
          end)
        end
        return "result"
      end)
      assert.are.equal("result", r)
      assert.are.same({ 1, 2, 3 }, finished)
    end)
  end)

  it("closes attached resources in reverse order and waits for their close to finish", function()
    helper.run(function()
      local log = {}
      coronet.switch(function(sw)
        sw:attach(resource(log, "a", t(0.02)))
        sw:on_release(function() log[#log + 1] = "release b" end)
        sw:attach(resource(log, "c"))
        local removed = sw:on_release(function() log[#log + 1] = "removed" end)
        removed:remove()
        local also_removed = sw:attach(resource(log, "d"))
        sw:remove(also_removed)
      end)
      assert.are.same({ "close c", "release b", "close a", "finished c", "finished a" }, log)
    end)
  end)

  it("closes an attached socket and waits until its descriptor is closed", function()
    helper.run(function()
      local server, port = helper.server(function(_, reader) reader:contents() end)
      local sock
      coronet.switch(function(sw)
        sock = helper.connect(port)
        sw:attach(sock)
      end)
      assert.is_true(sock:is_closed())
      server:close()
      server:close_finished()
    end)
  end)

  it("cancels fn and the other fibers when a forked fiber raises, and re-raises the error", function()
    helper.run(function()
      local fn_wait, other_wait
      local start = coronet.now()
      local ok, err = pcall(coronet.switch, function(sw)
        sw:fork(function() other_wait = table.pack(coronet.sleep(t(5))) end)
        sw:fork(function()
          coronet.sleep(t(0.01))
          error({ reason = "boom" })
        end)
        fn_wait = table.pack(coronet.sleep(t(5)))
      end)
      assert.is_false(ok)
      assert.are.equal("boom", err.reason)
      assert.is_true(coronet.now() - start < t(2))
      assert.are.equal("cancelled", fn_wait[3])
      assert.are.equal("cancelled", other_wait[3])
      -- the caller's fiber is not left cancelled
      assert.is_true(coronet.sleep(0.001))
      assert.is_false(coronet.spawn(function() end) == nil)
    end)
  end)

  it("re-raises fn's own error after cancelling the forks and closing the resources", function()
    helper.run(function()
      local log, fork_wait = {}, nil
      local ok, err = pcall(coronet.switch, function(sw)
        sw:attach(resource(log, "a"))
        sw:fork(function() fork_wait = table.pack(coronet.sleep(t(5))) end)
        coronet.sleep(0)
        error("fn failed")
      end)
      assert.is_false(ok)
      assert.truthy(err:find("fn failed", 1, true))
      assert.are.equal("cancelled", fork_wait[3])
      assert.are.same({ "close a", "finished a" }, log)
    end)
  end)

  it("appends later errors to the first one's suppressed array, dropping cancellation echoes", function()
    helper.run(function()
      local ok, err = pcall(coronet.switch, function(sw)
        sw:fork(function() error({ n = 1 }) end)
        sw:fork(function()
          local _, e = coronet.sleep(t(5)) -- cancelled by the first error
          error(e) -- its echo: dropped
        end)
        sw:on_release(function() error({ n = 2 }) end)
        local _, e = coronet.sleep(t(5))
        assert(errors.is(e, "cancelled"))
        error({ n = 3 })
      end)
      assert.is_false(ok)
      assert.are.equal(1, err.n)
      assert.are.equal(2, #err.suppressed)
      assert.are.same({ 3, 2 }, { err.suppressed[1].n, err.suppressed[2].n })
    end)
  end)

  it("gives later errors to the logger when the first error is a string", function()
    local logged = {}
    coronet.set_logger(function(msg) logged[#logged + 1] = msg end)
    helper.run(function()
      local ok, err = pcall(coronet.switch, function(sw)
        sw:fail("first")
        sw:fail("second")
      end)
      assert.is_false(ok)
      assert.are.equal("first", err)
    end)
    coronet.set_logger(nil)
    assert.are.equal(1, #logged)
    assert.truthy(logged[1]:find("second", 1, true))
  end)

  it("sw:fail cancels fn's current wait and later ones until the switch ends", function()
    helper.run(function()
      local waits = {}
      local ok, err = pcall(coronet.switch, function(sw)
        sw:fork(function()
          coronet.sleep(t(0.01))
          sw:fail(errors.new("cancelled", "stop"))
        end)
        waits[1] = select(3, coronet.sleep(t(5)))
        waits[2] = select(3, coronet.sleep(t(5)))
      end)
      assert.is_false(ok)
      assert.are.equal("stop", tostring(err))
      assert.are.same({ "cancelled", "cancelled" }, waits)
      assert.is_true(coronet.sleep(0.001))
    end)
  end)

  it("raises on fork, attach and fail once finished; attach closes the resource first", function()
    helper.run(function()
      local saved
      coronet.switch(function(sw) saved = sw end)
      assert.is_true(saved:is_done())
      assert.has_error(function() saved:fork(function() end) end, "coronet.switch: fork on a switch that has finished")
      assert.has_error(function() saved:fail("x") end, "coronet.switch: fail on a switch that has finished")
      local log = {}
      local r = resource(log, "late")
      assert.has_error(function() saved:attach(r) end)
      assert.is_true(r.closed)
      local ran = false
      assert.has_error(function() saved:on_release(function() ran = true end) end)
      assert.is_true(ran)
      assert.has_error(function() saved:attach({}) end)
    end)
  end)

  it("an inner switch's failure stays inside it; the outer one goes on", function()
    helper.run(function()
      local r = coronet.switch(function(outer)
        local outer_fork_done = false
        outer:fork(function()
          coronet.sleep(t(0.05))
          outer_fork_done = true
        end)
        local ok, err = pcall(coronet.switch, function(inner)
          inner:fork(function() error("inner", 0) end)
          coronet.sleep(t(5))
        end)
        assert.is_false(ok)
        assert.truthy(err:find("^inner"))
        assert.is_true(coronet.sleep(t(0.1)))
        assert.is_true(outer_fork_done)
        return "outer ok"
      end)
      assert.are.equal("outer ok", r)
    end)
  end)

  it("an outer switch's failure cancels a nested switch's fn and fibers", function()
    helper.run(function()
      local inner_waits = {}
      local ok, err = pcall(coronet.switch, function(outer)
        outer:fork(function()
          coronet.sleep(t(0.02))
          error("outer", 0)
        end)
        coronet.switch(function(inner)
          inner:fork(function() inner_waits.fork = select(3, coronet.sleep(t(5))) end)
          inner_waits.fn = select(3, coronet.sleep(t(5)))
        end)
        inner_waits.after = select(3, coronet.sleep(t(5)))
      end)
      assert.is_false(ok)
      assert.truthy(err:find("^outer"))
      assert.are.same({ fork = "cancelled", fn = "cancelled", after = "cancelled" }, inner_waits)
      assert.is_true(coronet.sleep(0.001))
    end)
  end)

  it("in a fiber cancelled from outside, cancels its fibers, closes its resources and returns", function()
    helper.run(function()
      local log, fork_wait = {}, nil
      local fiber = coronet.spawn(function()
        return coronet.switch(function(sw)
          sw:attach(resource(log, "a", t(0.01)))
          sw:fork(function() fork_wait = select(3, coronet.sleep(t(5))) end)
          coronet.sleep(t(5))
          return "returned"
        end)
      end)
      coronet.sleep(t(0.02))
      fiber:cancel()
      assert.are.equal("returned", fiber:join(t(2))) -- fn ignored its cancelled wait
      assert.is_true(fiber:is_done())
      assert.are.equal("cancelled", fork_wait)
      assert.are.same({ "close a", "finished a" }, log)
    end)
  end)

  it("a fork on a failed switch starts cancelled; join gives a failed fork's error", function()
    helper.run(function()
      local late_wait, failed_fork
      pcall(coronet.switch, function(sw)
        failed_fork = sw:fork(function() error({ code = "mine" }) end)
        coronet.sleep(t(5))
        sw:fork(function() late_wait = select(3, coronet.sleep(t(5))) end)
      end)
      assert.are.equal("cancelled", late_wait)
      local r, err = failed_fork:join()
      assert.is_nil(r)
      assert.are.equal("mine", err.code)
    end)
  end)
end)
