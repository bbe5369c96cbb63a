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

describe("a reader whose waiter goes away", function()
  -- 110,000 bytes that tell their own offsets apart
  local function pattern(n)
    local parts = {}
    for i = 0, n // 10 - 1 do parts[#parts + 1] = ("%09d\n"):format(i) end
    return table.concat(parts)
  end

  it("keeps working after really_read(n) above the cap timed out with the buffer past the cap", function()
    helper.run(function()
      local go = coronet.ivar()
      local payload = pattern(110000)
      local sock, r = helper.pair(function(_, w)
        assert(w:write(payload:sub(1, 70000))) -- past the cap, short of the wait
        go.deferred:wait()
        assert(w:write(payload:sub(70001)))
        assert(w:flushed():wait(helper.t(5)))
      end, { reader_buffer_size = 64 * 1024 })
      local data, _, code = r:really_read(100000, { timeout = helper.t(0.2) })
      assert.is_nil(data)
      assert.are.equal("timeout", code)
      go:fill()
      coronet.sleep(helper.t(0.1)) -- the bytes arrive while nobody waits
      assert.are.equal(payload:sub(1, 100000), r:really_read(100000, { timeout = helper.t(5) }))
      assert.are.equal(payload:sub(100001), r:really_read(10000, { timeout = helper.t(5) }))
      sock:close()
    end)
  end)
end)

describe("the loop's read scratch", function()
  it("is not overwritten when a fiber resumed by one connection's read closes another with unread input", function()
    helper.run(function()
      local a_go, b_sent = coronet.ivar(), coronet.ivar()
      local _, port = helper.server(function(_, r, w)
        local who = r:read_line()
        if who == "A" then
          a_go.deferred:wait()
          assert(w:write("A1\nA2\n"))
        else
          for i = 1, 200 do assert(w:write(("-DATA %04d\n"):format(i))) end
          assert(w:flushed():wait(helper.t(2)))
          b_sent:fill()
        end
        r:contents()
      end)
      local sock_b, _, w_b = helper.connect(port, { reader_buffer_size = 16 })
      assert(w_b:write("B\n"))
      w_b:close()
      local sock_a, r_a, w_a = helper.connect(port)
      assert(w_a:write("A\n"))
      helper.await(b_sent.deferred)
      coronet.sleep(helper.t(0.02)) -- B's bytes are in its kernel buffer, unread
      coronet.spawn(function() coronet.sleep(0.01) a_go:fill() end)
      assert.are.equal("A1", r_a:read_line()) -- resumed inside A's read callback
      sock_b:close()
      assert.are.equal("A2", r_a:read_line())
      sock_a:close()
      assert.is_true(sock_b:close_finished(helper.t(2)))
    end)
  end)
end)

describe("unix socket files", function()
  it("closing a server removes only the file it bound, not a newer server's file at the same path", function()
    helper.run(function()
      local tcp = coronet.tcp
      local path = helper.unix_path("reuse")
      local where = tcp.Where_to_listen.on_file(path)
      local old = assert(tcp.Server.create(where, helper.echo))
      os.remove(path)
      local new = assert(tcp.Server.create(where, helper.echo))
      helper.await(old:close())
      local sock, r, w = helper.connect(path)
      assert(w:write("still here\n"))
      assert.are.equal("still here", r:read_line { timeout = helper.t(2) })
      sock:close()
      assert.is_true(sock:close_finished(helper.t(2)))
      helper.await(new:close())
      assert.is_false(os.execute("test -e '" .. path .. "'") == true) -- the new server removed its own file
    end)
  end)
end)

describe("server close requests", function()
  it("close{close_existing_connections=true} after a plain close waits for the connections and carries true", function()
    helper.run(function()
      local server, port = helper.server(function(_, r) r:contents() end)
      local sock, r = helper.connect(port)
      assert.is_true(helper.eventually(function() return server:num_connections() == 1 end))
      local plain = server:close()
      helper.await(plain) -- the listener is closed; the connection is not
      assert.is_true(plain:peek())
      assert.are.equal(1, server:num_connections())
      local all = server:close { close_existing_connections = true }
      assert.are.equal(all, server:close_finished())
      assert.is_false(all:is_determined()) -- the connection closes on a later turn
      helper.await(all)
      assert.are.equal(0, server:num_connections())
      assert.is_true(all:wait(helper.t(1)))
      assert.is_nil(r:read(nil, { timeout = helper.t(2) }))
      sock:close()
    end)
  end)

  it("the core's close_wait after a later close(true) waits for the connections", function()
    helper.run(function()
      local held = {}
      local srv = assert(core.listen(coronet.address("127.0.0.1", 0), {}, function(_, sock)
        held[#held + 1] = sock
        sock:reader():contents()
      end))
      local client = helper.connect(srv:address().port)
      assert.is_true(helper.eventually(function() return srv:num_connections() == 1 end))
      srv:close(false)
      assert.is_true(srv:close_wait(helper.t(2)))
      assert.is_true(srv:is_close_finished())
      srv:close(true)
      assert.are.equal(1, srv:num_connections())
      assert.is_false(srv:is_close_finished())
      assert.is_true(srv:close_wait(helper.t(2)))
      assert.are.equal(0, srv:num_connections())
      client:close()
      assert.is_true(client:close_finished(helper.t(2)))
    end)
  end)
end)
