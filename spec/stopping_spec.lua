-- spec/stopping_spec.lua: how a server stops. coronet.signal with several
-- names (the first to arrive wins, then every name is released to its
-- default action), coronet.any (the first of several deferreds), and the
-- examples stopping cleanly on SIGINT as well as SIGTERM under lua5.4.
local coronet = require "coronet"
local helper = require "helper"
local t = helper.t

-- A child lua5.4 running `source` from / (coronet found through LUA_PATH
-- and LUA_CPATH); its output and exit status (128 + N after signal N).
local function run_child(source) return helper.child(source, { outside = true }) end

describe("coronet.signal with several names", function()
  it("is determined by the first to arrive, with its number and name", function()
    helper.run(function()
      local d = coronet.signal("SIGUSR1", "SIGUSR2")
      coronet.sleep(t(0.02)) -- the watchers start on the next loop turn
      assert.is_true(os.execute("kill -USR2 " .. helper.pid()))
      local signum, name = d:wait(t(5))
      assert.are.equal(12, signum)
      assert.are.equal("SIGUSR2", name)
    end)
  end)

  it("a single name gives its number and name too", function()
    helper.run(function()
      local d = coronet.signal("SIGUSR1")
      coronet.sleep(t(0.02))
      assert.is_true(os.execute("kill -USR1 " .. helper.pid()))
      assert.are.same({ 10, "SIGUSR1" }, { d:wait(t(5)) })
    end)
  end)

  it("once determined, releases every name: the other signal gets its default action", function()
    -- SIGUSR1's default action ends the process: it must, once SIGUSR2 won.
    local out, status = run_child([[
      local coronet = require "coronet"
      local pid = io.open("/proc/self/stat"):read("n")
      coronet.run(function()
        local d = coronet.signal("SIGUSR1", "SIGUSR2")
        coronet.sleep(0.02)
        os.execute("kill -USR2 " .. pid)
        assert(select(2, d:wait(5)) == "SIGUSR2")
        coronet.sleep(0.05)                  -- the losing watcher's close completes
        os.execute("kill -USR1 " .. pid)
        coronet.sleep(2)
        print("SIGUSR1 was still caught")
      end)
    ]])
    assert.are.equal(128 + 10, status, out)
    assert.is_nil(out:find("still caught", 1, true), out)
  end)

  it("a second Ctrl-C after the first was handled ends the process", function()
    -- (io.popen, not os.execute: system() ignores SIGINT in its caller while the shell runs)
    local out, status = run_child([[
      local coronet = require "coronet"
      local pid = io.open("/proc/self/stat"):read("n")
      local function interrupt() io.popen("kill -INT " .. pid):close() end
      coronet.run(function()
        local d = coronet.signal("SIGTERM", "SIGINT")
        coronet.sleep(0.02)
        interrupt()
        assert(select(2, d:wait(5)) == "SIGINT")
        coronet.sleep(0.05)
        interrupt()                          -- the impatient user's second Ctrl-C
        coronet.sleep(2)
        print("the second Ctrl-C was swallowed")
      end)
    ]])
    assert.are.equal(128 + 2, status, out)
    assert.is_nil(out:find("swallowed", 1, true), out)
  end)

  it("the losing watchers leave nothing behind when the run ends", function()
    helper.run(function()
      local d = coronet.signal("SIGUSR1", "SIGUSR2", "SIGHUP")
      coronet.sleep(t(0.02))
      assert.is_true(os.execute("kill -HUP " .. helper.pid()))
      assert.are.equal("SIGHUP", select(2, d:wait(t(5))))
    end) -- helper.run asserts no fiber and no core object is left
  end)

  it("raises naming the position of an unknown name, watching nothing", function()
    helper.run(function()
      local ok, err = pcall(coronet.signal, "SIGTERM", "SIGBOGUS")
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'signal' (unknown signal name 'SIGBOGUS')", err, 1, true)
      ok, err = pcall(coronet.signal)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'signal'", err, 1, true)
      ok, err = pcall(coronet.signal, "SIGTERM", 15)
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'signal'", err, 1, true)
    end)
  end)
end)

describe("coronet.any", function()
  it("is determined by the first deferred determined, with its values", function()
    helper.run(function()
      local a, b, c = coronet.ivar(), coronet.ivar(), coronet.ivar()
      local first = coronet.any(a:read(), b:read(), c:read())
      assert.is_false(first:is_determined())
      coronet.spawn(function() coronet.sleep(t(0.01)); b:fill("b", 2) end)
      assert.are.same({ "b", 2 }, { first:wait(t(5)) })
      a:fill("a") -- a later fill changes nothing
      coronet.sleep(0)
      assert.are.same({ "b", 2 }, { first:peek() })
      assert.are.equal(0, coronet.deferred.pending_count(c)) -- the losers no longer hold it
      assert.are.equal(0, coronet.deferred.pending_count(a))
    end)
  end)

  it("nil values pass through, counted", function()
    helper.run(function()
      local a = coronet.ivar()
      local first = coronet.any(a:read())
      a:fill(nil, "x", nil)
      assert.are.equal(3, select("#", first:wait(t(5))))
    end)
  end)

  it("an argument already determined wins at once, the first such in order", function()
    local a, b = coronet.ivar(), coronet.ivar()
    b:fill("b")
    a:fill("a")
    local first = coronet.any(coronet.ivar():read(), a:read(), b:read())
    assert.is_true(first:is_determined())
    assert.are.equal("a", first:peek())
  end)

  it("the same deferred twice is filled once", function()
    helper.run(function()
      local a = coronet.ivar()
      local first = coronet.any(a:read(), a:read())
      a:fill(1)
      assert.are.equal(1, first:wait(t(5)))
    end)
  end)

  it("stops a server on the first of a signal and a deadline", function()
    helper.run(function()
      local server = helper.server(helper.echo)
      local deadline = coronet.ivar()
      coronet.spawn(function() coronet.sleep(t(0.05)); deadline:fill("deadline") end)
      local why = coronet.any(coronet.signal("SIGUSR1"), deadline:read()):wait(t(5))
      assert.are.equal("deadline", why)
      server:close():wait()
    end)
  end)

  it("raises unless every argument is a deferred, naming the position", function()
    local iv = coronet.ivar()
    local cases = {
      { {}, "bad argument #1 to 'any' (deferred expected, got no value)" },
      { { iv:read(), iv }, "bad argument #2 to 'any' (deferred expected, got ivar)" },
      { { iv:read(), iv:read(), "x" }, "bad argument #3 to 'any' (deferred expected, got string)" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(coronet.any, table.unpack(case[1]))
      assert.is_false(ok)
      assert.matches(case[2], err, 1, true)
    end
    assert.are.equal(0, coronet.deferred.pending_count(iv)) -- nothing attached by a refused call
  end)
end)

describe("the examples stop on SIGINT as on SIGTERM", function()
  for _, name in ipairs({ "echo_server.lua", "http_hello.lua", "chat_server.lua", "redis_lite.lua" }) do
    for _, signal in ipairs({ "INT", "TERM" }) do
      it(name .. " exits cleanly on SIG" .. signal, function()
        local log
        helper.run(function()
          local pid, port
          pid, port, log = helper.start_example(name)
          local sock = assert(helper.connect(port))  -- a client still connected when the signal comes
          assert.is_true(os.execute(("kill -%s %d"):format(signal, pid)))
          assert(helper.eventually(function() return not os.execute("kill -0 " .. pid .. " 2>/dev/null") end, 5),
            name .. " did not exit on SIG" .. signal)
          sock:close()
        end, 20)
        local f = assert(io.open(log))
        local stderr = f:read("a")
        f:close()
        os.remove(log)
        assert.is_nil(stderr:find("interrupted", 1, true), stderr)
        assert.is_nil(stderr:find("traceback", 1, true), stderr)
      end)
    end
  end
end)
