-- spec/core_safety_spec.lua: memory safety of the core under the binding:
-- close callbacks that run user code, the loop's shared read scratch, unix
-- socket files, the listener's error paths.
local helper = require "helper"
local coronet = require "coronet"
local core = require "coronet.core"

describe("close callbacks that wake fibers", function()
  it("a fiber woken by a server's close, collecting the connection it closed, touches no freed stream", function()
    helper.run(function()
      collectgarbage("stop")
      local handled = coronet.ivar()
      local srv = assert(core.listen(coronet.address("127.0.0.1", 0), {}, function()
        handled:fill() -- drops the socket: only the garbage collector still knows it
      end))
      local port = srv:address().port
      local client = helper.connect(port)
      helper.await(handled.deferred)
      local woken = coronet.ivar()
      coronet.spawn(function()
        srv:close(true)
        woken:fill(srv:close_wait())
        collectgarbage() -- frees the accepted socket if nothing holds it any more
      end)
      helper.await(woken.deferred)
      assert.is_true(woken.deferred:peek())
      client:close()
      assert.is_true(client:close_finished(helper.t(2)))
      collectgarbage("restart")
    end)
  end)
end)

describe("signal watchers", function()
  local function raise(name) os.execute("kill -" .. name .. " " .. helper.pid()) end

  it("a fiber woken by a signal that closes everything does not close the watcher twice", function()
    helper.run(function()
      local got = coronet.ivar()
      coronet.spawn(function()
        local signum = core.signal_wait("USR1")
        core.close_all(false) -- a graceful-shutdown handler
        got:fill(signum)
      end)
      coronet.sleep(0.01)
      raise("USR1")
      helper.await(got.deferred)
      assert.is_number(got.deferred:peek())
    end)
  end)

  it("a cancelled signal wait closes its watcher", function()
    helper.run(function()
      local before = core.live()
      local fiber = coronet.spawn(function() core.signal_wait("USR2") end)
      coronet.sleep(0.01)
      assert.are.equal(before + 1, core.live())
      fiber:cancel()
      assert.is_true(helper.eventually(function() return core.live() == before end))
    end)
  end)
end)
