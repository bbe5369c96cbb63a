-- spec/runtime_spec.lua: coronet.run, spawn, join, cancel, sleep, now, step,
-- waiting outside a fiber, signals and the logger.
local coronet = require "coronet"
local core = require "coronet.core"
local errors = require "coronet.errors"
local helper = require "helper"

local t = helper.t

describe("coronet.run", function()
  it("returns fn's results, including nils and arguments passed to it", function()
    local n, a, b, c, d = select("#", coronet.run(function(x, y) return x + y, nil, "z", nil end, 2, 3)),
      coronet.run(function(x, y) return x + y, nil, "z", nil end, 2, 3)
    assert.are.equal(4, n)
    assert.are.equal(5, a)
    assert.is_nil(b)
    assert.are.equal("z", c)
    assert.is_nil(d)
    helper.assert_clean()
  end)

  it("can run again after a run has returned", function()
    assert.are.equal("first", coronet.run(function() coronet.sleep(0) return "first" end))
    assert.are.equal("second", coronet.run(function() coronet.sleep(t(0.01)) return "second" end))
    assert.is_false(core.is_running())
    helper.assert_clean()
  end)

  it("raises when called inside a run", function()
    local ok, err = helper.run(function()
      return pcall(coronet.run, function() return 1 end)
    end)
    assert.is_false(ok)
    assert.matches("already running", tostring(err), 1, true)
    -- the outer run was not disturbed and a later run still works
    assert.are.equal(7, coronet.run(function() return 7 end))
  end)

  it("re-raises the error of the main fiber", function()
    local ok, err = pcall(coronet.run, function() error("main-fiber-broke-77") end)
    assert.is_false(ok)
    assert.matches("main-fiber-broke-77", err, 1, true)
    assert.matches("stack traceback", err, 1, true)
    helper.assert_clean()
  end)

  it("ends when another fiber raises, and raises that error with a traceback", function()
    local main_finished = false
    local start = coronet.now()
    local ok, err = pcall(coronet.run, function()
      coronet.spawn(function()
        coronet.sleep(t(0.01))
        error("other-fiber-exploded-42")
      end)
      coronet.sleep(t(5)) -- cancelled by the teardown
      main_finished = true
    end)
    assert.is_false(ok)
    assert.are.equal("string", type(err))
    assert.matches("other-fiber-exploded-42", err, 1, true)
    assert.matches("stack traceback", err, 1, true)
    assert.is_true(coronet.now() - start < t(3))
    -- the main fiber was cancelled at teardown: its sleep returned early and it ran to its end
    assert.is_true(main_finished)
    helper.assert_clean()
  end)

  it("keeps an error value raised by another fiber, with a traceback field", function()
    local ok, err = pcall(coronet.run, function()
      coronet.spawn(function() error(errors.new("my_code", "a value error")) end)
      coronet.sleep(t(5))
    end)
    assert.is_false(ok)
    assert.is_true(errors.is(err, "my_code"))
    assert.are.equal("a value error", tostring(err))
    assert.are.equal("string", type(err.traceback))
    helper.assert_clean()
  end)

  it("teardown cancels waiting fibers and runs their <close> variables", function()
    local closed, results = {}, {}
    local r = coronet.run(function()
      for i = 1, 3 do
        coronet.spawn(function()
          local guard <close> = setmetatable({}, { __close = function() closed[#closed + 1] = i end })
          local ok, err, code = coronet.sleep(t(30))
          results[i] = { ok, errors.is(err), code }
          -- later waits return at once too
          local ok2, _, code2 = coronet.sleep(t(30))
          results[i][4], results[i][5] = ok2, code2
        end)
      end
      coronet.sleep(t(0.02))
      return "done"
    end)
    assert.are.equal("done", r)
    table.sort(closed)
    assert.are.same({ 1, 2, 3 }, closed)
    for i = 1, 3 do
      assert.are.same({ nil, true, "cancelled", nil, "cancelled" }, results[i])
    end
    helper.assert_clean()
  end)

  it("teardown closes open servers and connections and runs <close> variables of fibers using them", function()
    local server, client, handler_closed, handler_read
    local start = coronet.now()
    coronet.run(function()
      local port
      server, port = helper.server(function(_, reader, _)
        local guard <close> = setmetatable({}, { __close = function() handler_closed = true end })
        handler_read = table.pack(reader:read_line()) -- waits: the client never writes
      end)
      local sock = helper.connect(port)
      client = sock
      local deadline = coronet.now() + t(3)
      while server:num_connections() < 1 and coronet.now() < deadline do coronet.sleep(t(0.005)) end
      assert.are.equal(1, server:num_connections())
      -- return without closing anything
    end)
    assert.is_true(coronet.now() - start < t(5))
    assert.is_true(server:is_closed())
    assert.is_true(client:is_closed())
    assert.is_true(handler_closed)
    assert.is_nil(handler_read[1])
    assert.is_true(errors.is(handler_read[2]))
    assert.is_string(handler_read[3])
    helper.assert_clean()
  end)

  it("raises on a deadlock: the main fiber waits on an ivar nobody fills", function()
    local start = coronet.now()
    local ok, err = pcall(coronet.run, function()
      local ivar = coronet.ivar()
      ivar.deferred:wait()
      return "unreachable"
    end)
    assert.is_false(ok)
    assert.matches("deadlock", tostring(err), 1, true)
    assert.is_true(coronet.now() - start < t(2))
    helper.assert_clean()
  end)

  it("is not a deadlock while a timer can still wake the main fiber", function()
    local r = coronet.run(function()
      local ivar = coronet.ivar()
      coronet.spawn(function() coronet.sleep(t(0.03)) ivar:fill("late") end)
      return ivar.deferred:wait()
    end)
    assert.are.equal("late", r)
    helper.assert_clean()
  end)
end)

describe("coronet.spawn", function()
  it("runs fibers concurrently inside run and passes arguments", function()
    local log = {}
    helper.run(function()
      local a = coronet.spawn(function(tag) coronet.sleep(t(0.03)) log[#log + 1] = tag end, "slow")
      local b = coronet.spawn(function(tag) coronet.sleep(t(0.001)) log[#log + 1] = tag end, "fast")
      a:join() b:join()
    end)
    assert.are.same({ "fast", "slow" }, log)
  end)

  it("starts on the next loop turn, not inside spawn", function()
    helper.run(function()
      local started = false
      local f = coronet.spawn(function() started = true end)
      assert.is_false(started)
      assert.is_false(f:is_done())
      f:join()
      assert.is_true(started)
      assert.is_true(f:is_done())
    end)
  end)

  it("a fiber spawned before run starts when run runs", function()
    local started, value = false, nil
    local early = coronet.spawn(function(x) started = true return x * 2 end, 21)
    assert.is_false(started)
    assert.are.equal(1, core.fiber_count())
    local r = helper.run(function()
      value = early:join()
      return "ok"
    end)
    assert.are.equal("ok", r)
    assert.is_true(started)
    assert.are.equal(42, value)
  end)

  it("rejects a non-function", function()
    assert.has_error(function() coronet.spawn(42) end)
    helper.assert_clean()
  end)
end)

describe("fiber:join", function()
  it("returns the fiber's results", function()
    helper.run(function()
      local f = coronet.spawn(function() coronet.sleep(t(0.01)) return 1, nil, "three" end)
      local r = table.pack(f:join())
      assert.are.equal(3, r.n)
      assert.are.same({ 1, nil, "three", n = 3 }, r)
      -- joining again returns the same results at once
      assert.are.same({ 1, nil, "three", n = 3 }, table.pack(f:join()))
    end)
  end)

  it("times out with nil, err, \"timeout\" while the fiber runs on", function()
    helper.run(function()
      local f = coronet.spawn(function() coronet.sleep(t(0.1)) return "finished" end)
      local r, err, code = f:join(t(0.01))
      assert.is_nil(r)
      assert.are.equal("timeout", code)
      assert.is_true(errors.is(err, "timeout"))
      assert.is_false(f:is_done())
      assert.are.equal("finished", f:join())
    end)
  end)

  it("returns nil, err, code for a fiber that raised (in the turn the error ends the run)", function()
    local joined
    local ok, err = pcall(coronet.run, function()
      local f = coronet.spawn(function()
        coronet.sleep(t(0.01))
        error(errors.new("custom_failure", "it failed"))
      end)
      joined = table.pack(f:join())
      coronet.sleep(t(5))
    end)
    -- the uncaught error ended the run ...
    assert.is_false(ok)
    assert.is_true(errors.is(err, "custom_failure"))
    -- ... but the joiner still saw the failure
    assert.is_not_nil(joined)
    assert.is_nil(joined[1])
    assert.is_true(errors.is(joined[2], "custom_failure"))
    assert.are.equal("custom_failure", joined[3])
    helper.assert_clean()
  end)

  it("returns nil, err, \"error\" for a fiber that raised a string", function()
    local joined
    local ok, err = pcall(coronet.run, function()
      local f = coronet.spawn(function() error("plain-string-failure") end)
      joined = table.pack(f:join())
    end)
    assert.is_false(ok)
    assert.matches("plain-string-failure", err, 1, true)
    assert.is_nil(joined[1])
    assert.matches("plain-string-failure", joined[2], 1, true)
    assert.are.equal("error", joined[3])
    helper.assert_clean()
  end)

  it("returns nil, err, \"cancelled\" for a cancelled fiber that then raised, without ending the run", function()
    local r = helper.run(function()
      local f = coronet.spawn(function()
        local ok, _, code = coronet.sleep(t(30))
        assert(not ok and code == "cancelled")
        error("raised after cancel")
      end)
      coronet.sleep(t(0.01))
      f:cancel()
      local v, err, code = f:join()
      assert.is_nil(v)
      assert.are.equal("cancelled", code)
      assert.is_true(errors.is(err, "cancelled"))
      return "run went on"
    end)
    assert.are.equal("run went on", r)
  end)
end)

describe("fiber:cancel", function()
  it("ends the current wait with nil, err, \"cancelled\" and every later wait at once", function()
    helper.run(function()
      local seen = {}
      local f = coronet.spawn(function()
        local start = coronet.now()
        seen.first = table.pack(coronet.sleep(t(30)))
        seen.second = table.pack(coronet.sleep(t(30)))
        local ivar = coronet.ivar()
        seen.third = table.pack(ivar.deferred:wait(t(30)))
        seen.elapsed = coronet.now() - start
        return "after"
      end)
      coronet.sleep(t(0.01))
      f:cancel()
      f:join(t(5))
      assert.is_true(f:is_done())
      for _, key in ipairs { "first", "second", "third" } do
        assert.is_nil(seen[key][1])
        assert.is_true(errors.is(seen[key][2], "cancelled"))
        assert.are.equal("cancelled", seen[key][3])
      end
      assert.is_true(seen.elapsed < t(2))
    end)
  end)

  it("cancelling before the fiber starts makes its first wait return cancelled", function()
    helper.run(function()
      local got
      local f = coronet.spawn(function() got = table.pack(coronet.sleep(t(30))) end)
      f:cancel()
      f:join(t(5))
      assert.is_nil(got[1])
      assert.are.equal("cancelled", got[3])
    end)
  end)

  it("does not affect other fibers", function()
    helper.run(function()
      local a = coronet.spawn(function() return coronet.sleep(t(30)) end)
      local b = coronet.spawn(function() return coronet.sleep(t(0.02)) end)
      coronet.sleep(0)
      a:cancel()
      assert.is_true(b:join())
      assert.are.equal("cancelled", select(3, a:join()))
    end)
  end)
end)

describe("coronet.sleep and coronet.now", function()
  it("sleeps at least the requested time", function()
    helper.run(function()
      for _, s in ipairs { 0.02, 0.05 } do
        local d = t(s)
        local start = coronet.now()
        assert.is_true(coronet.sleep(d))
        local elapsed = coronet.now() - start
        -- libuv's millisecond clock: allow 2 ms of rounding, nothing more
        assert.is_true(elapsed >= d - 0.002, ("slept %.4f s for %.4f s"):format(elapsed, d))
        assert.is_true(elapsed < d + t(1))
      end
    end)
  end)

  it("sleep(0) returns true and rejects negative durations", function()
    helper.run(function()
      assert.is_true(coronet.sleep(0))
      assert.has_error(function() coronet.sleep(-1) end)
    end)
  end)

  it("now is a monotonic float in seconds", function()
    local a = coronet.now()
    assert.are.equal("float", math.type(a))
    local b = coronet.now()
    assert.is_true(b >= a)
    helper.run(function() coronet.sleep(t(0.02)) end)
    local c = coronet.now()
    assert.is_true(c - b >= t(0.02) - 0.002)
    assert.is_true(c - b < t(5))
  end)
end)

describe("coronet.step", function()
  it("drives the loop from outside run until a spawned fiber finishes", function()
    local done = false
    local f = coronet.spawn(function()
      coronet.sleep(t(0.02))
      done = true
      return "stepped"
    end)
    local passes = 0
    local start = coronet.now()
    while not f:is_done() do
      assert.is_true(coronet.now() - start < t(5), "step did not finish the fiber")
      coronet.step(t(0.5))
      passes = passes + 1
    end
    assert.is_true(done)
    assert.is_true(passes >= 1)
    assert.are.equal("stepped", f.done.value[1][2])
    -- nothing left: a non-blocking step reports the loop idle
    assert.is_false(coronet.step(0))
    helper.assert_clean()
  end)

  it("raises the error of a fiber that raised during the step", function()
    coronet.spawn(function() error("raised-during-step") end)
    local ok, err = pcall(coronet.step, 0)
    assert.is_false(ok)
    assert.matches("raised-during-step", err, 1, true)
    helper.assert_clean()
  end)

  it("raises when called inside a fiber", function()
    helper.run(function()
      local ok, err = pcall(coronet.step)
      assert.is_false(ok)
      assert.matches("already running", tostring(err), 1, true)
      ok = pcall(coronet.step, 0)
      assert.is_false(ok)
    end)
  end)
end)

describe("waiting outside a fiber", function()
  it("raises from the main thread, naming coronet.spawn", function()
    local ok, err = pcall(coronet.sleep, 0.01)
    assert.is_false(ok)
    assert.matches("coronet.spawn", err, 1, true)
    local ivar = coronet.ivar()
    ok, err = pcall(ivar.deferred.wait, ivar.deferred, 0.01)
    assert.is_false(ok)
    assert.matches("coronet.spawn", err, 1, true)
    helper.assert_clean()
  end)

  it("raises from a coroutine made with coroutine.create inside a fiber", function()
    helper.run(function()
      local co = coroutine.create(function() return coronet.sleep(t(0.01)) end)
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.matches("coronet.spawn", err, 1, true)
      local wrapped = coroutine.wrap(function() return coronet.ivar().deferred:wait() end)
      local ok2, err2 = pcall(wrapped)
      assert.is_false(ok2)
      assert.matches("coronet.spawn", err2, 1, true)
      -- the fiber itself can still wait
      assert.is_true(coronet.sleep(0))
    end)
  end)
end)

describe("coronet.signal", function()
  it("is filled with the signal number when the signal arrives", function()
    helper.run(function()
      local d = coronet.signal("SIGUSR1")
      assert.is_false(d:is_determined())
      coronet.sleep(t(0.02)) -- let the watcher start before sending
      assert.is_false(d:is_determined())
      local pid = helper.pid()
      assert.is_true(os.execute("kill -USR1 " .. pid))
      local signum, err, code = d:wait(t(5))
      assert.are.equal(10, signum, tostring(err) .. " " .. tostring(code))
      assert.is_true(d:is_determined())
    end)
  end)

  it("rejects an unknown signal name", function()
    local ok, err = pcall(coronet.run, function()
      local d = coronet.signal("SIGNOTREAL")
      return d:wait(t(5))
    end)
    assert.is_false(ok)
    assert.matches("unknown signal name", tostring(err), 1, true)
    helper.assert_clean()
  end)

  it("an unsent signal's watcher is closed by the teardown", function()
    local d
    coronet.run(function()
      d = coronet.signal("SIGUSR2")
      coronet.sleep(t(0.01))
    end)
    assert.is_false(d:is_determined())
    helper.assert_clean()
  end)
end)

describe("coronet.set_logger", function()
  after_each(function() coronet.set_logger(nil) end)

  it("receives messages logged through the core", function()
    local got = {}
    coronet.set_logger(function(msg) got[#got + 1] = msg end)
    helper.run(function()
      core.log("hello from the spec")
      core.log("second line")
    end)
    assert.are.same({ "hello from the spec", "second line" }, got)
  end)

  it("stops receiving after set_logger(nil), and errors in the logger are dropped", function()
    local got = {}
    coronet.set_logger(function(msg) got[#got + 1] = msg error("logger broke") end)
    core.log("one")
    coronet.set_logger(nil)
    core.log("two")
    assert.are.same({ "one" }, got)
    assert.has_error(function() coronet.set_logger("not a function") end)
  end)

  it("is silent by default", function()
    local cmd = [[lua5.4 -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path; ]]
      .. [[package.cpath="build/?.so;"..package.cpath; ]]
      .. [[local core = require "coronet.core"; core.log("should-not-appear"); io.write("end")' 2>&1]]
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    assert.are.equal("end", out)
  end)
end)

describe("fiber:cancel unwinding", function()
  it("unwinds a cancelled fiber that ignores cancellation and keeps waiting, so run still returns", function()
    local spins = 0
    local result = coronet.run(function()
      coronet.spawn(function()
        while true do -- ignores every "cancelled"
          coronet.sleep(1)
          spins = spins + 1
        end
      end)
      coronet.sleep(t(0.01))
      return "main returned"
    end)
    assert.are.equal("main returned", result)
    assert.is_true(spins >= 1000, "spins " .. spins) -- bounded: unwound after 1000 ignored waits
    assert.is_true(spins < 2000, "spins " .. spins)
    assert.are.equal(0, core.fiber_count())
  end)

  it("runs the cancelled fiber's <close> variables as it returns, inside the run", function()
    helper.run(function()
      local closed_at, returned = nil, false
      local f = coronet.spawn(function()
        local guard <close> = setmetatable({}, { __close = function() closed_at = coronet.now() end })
        local _, _, code = coronet.sleep(t(30))
        returned = code
      end)
      coronet.sleep(t(0.01))
      assert.is_nil(closed_at)
      local t0 = coronet.now()
      f:cancel()
      f:join(t(5))
      assert.is_true(f:is_done())
      assert.are.equal("cancelled", returned)
      assert.is_number(closed_at)
      assert.is_true(closed_at >= t0)
      assert.is_true(closed_at - t0 < t(2))
    end)
  end)
end)

describe("coronet.backend_fd and coronet.backend_timeout", function()
  it("backend_fd is the loop's integer descriptor, the same on every call", function()
    local fd = coronet.backend_fd()
    assert.are.equal("integer", math.type(fd))
    assert.is_true(fd >= 0)
    assert.are.equal(fd, coronet.backend_fd())
    helper.run(function() assert.are.equal(fd, coronet.backend_fd()) end)
  end)

  it("backend_timeout: 0 while a fiber is due, the time to the next timer while one sleeps", function()
    local f = coronet.spawn(coronet.sleep, t(0.5))
    assert.are.equal(0, coronet.backend_timeout()) -- the fiber has not started: work is due now
    coronet.step(0) -- starts it; it now sleeps
    local s = coronet.backend_timeout()
    assert.is_number(s)
    assert.is_true(s > 0 and s <= t(0.5) + 0.001, "backend_timeout " .. tostring(s))
    f:cancel()
    local deadline = coronet.now() + t(5)
    while not f:is_done() and coronet.now() < deadline do coronet.step(0) end
    assert.is_true(f:is_done())
    helper.assert_clean()
  end)

  it("backend_timeout is nil when nothing is scheduled (as its LDoc says)", function()
    helper.assert_clean()
    assert.is_nil(coronet.backend_timeout())
  end)
end)

describe("coronet.set_logger rate limit", function()
  after_each(function() coronet.set_logger(nil) end)

  it("passes at most 10 lines a second and reports the suppressed count in the next window", function()
    local got = {}
    coronet.set_logger(function(msg) got[#got + 1] = msg end)
    helper.run(function()
      coronet.sleep(t(1.05)) -- start a fresh one-second window
      local before = #got
      for i = 1, 50 do core.log("burst line " .. i) end
      assert.are.equal(10, #got - before)
      assert.are.equal("burst line 10", got[#got])
      coronet.sleep(1.05) -- the window is one second of loop time, not scaled
      core.log("after the window")
      assert.are.equal("coronet: 40 similar messages suppressed", got[#got - 1])
      assert.are.equal("after the window", got[#got])
    end)
  end)
end)
