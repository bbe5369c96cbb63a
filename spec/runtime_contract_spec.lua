-- spec/runtime_contract_spec.lua: the runtime's documented behaviour at its
-- edges: deadlines count from when they start and never beat ready I/O, an
-- interrupt ends only its own connect, upon callbacks are fibers like
-- spawn's, errors pass through untouched, and bad arguments raise at once.
local coronet = require "coronet"
local core = require "coronet.core"
local helper = require "helper"

local t = helper.t

-- Keeps the CPU busy for `seconds` without yielding.
local function busy(seconds)
  local stop = coronet.now() + seconds
  while coronet.now() < stop do end
end

describe("deadlines", function()
  it("sleep(0.1) after 0.3 s of CPU work in the same turn still sleeps about 0.1 s", function()
    helper.run(function()
      local _, r, w = helper.pair(function(sr, sw) helper.echo(nil, sr, sw) end)
      assert(w:write("x\n"))
      assert.are.equal("x", r:read_line()) -- resumed from the read callback: timers come next
      busy(0.3)
      local start = coronet.now()
      assert.is_true(coronet.sleep(0.1))
      local slept = coronet.now() - start
      assert.is_true(slept >= 0.095, ("slept %.4f s"):format(slept))
    end)
  end)

  it("a read timeout that starts after CPU work returns the line that arrived meanwhile", function()
    helper.run(function()
      local got = coronet.ivar()
      local server, port = helper.server(function(_, r)
        assert.are.equal("ready", r:read_line()) -- resumed from the read callback
        busy(0.4)                                 -- "hello" arrives in the kernel meanwhile
        got:fill(r:read_line { timeout = 0.1 })
      end)
      -- a peer outside this process, so that its bytes arrive during the busy loop
      local cmd = ("bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d; printf \"ready\\n\" >&3; sleep 0.1; "
        .. "printf \"hello\\n\" >&3; sleep 1' >/dev/null 2>&1 &"):format(port)
      assert(os.execute(cmd))
      local line, err = got:read():wait(t(5))
      assert.are.equal("hello", line, tostring(err))
      server:close()
    end)
  end)

  it("a deadline passed while another fiber computed still lets the ready line be read first", function()
    helper.run(function()
      local _, r, w = helper.pair(function(sr, sw)
        assert.are.equal("ping", sr:read_line()) -- resumed from the read callback
        sw:write("pong\n")
        busy(t(0.4))                              -- the client's deadline passes meanwhile
        sr:read_line()
      end)
      assert(w:write("ping\n"))
      -- scaled: under valgrind the ping's round to the server alone can take 0.2 s
      local line, err = r:read_line { timeout = t(0.2) }
      assert.are.equal("pong", line, tostring(err))
    end)
  end)

  it("math.huge and 1e300 mean no deadline; NaN and negative durations raise", function()
    helper.run(function()
      local ivar = coronet.ivar()
      local waiter = coronet.spawn(function() return ivar:read():wait(math.huge) end)
      local sleeper = coronet.spawn(function() return coronet.sleep(1e300) end)
      coronet.sleep(t(0.02))
      ivar:fill("filled")
      assert.are.equal("filled", waiter:join(t(5)))
      sleeper:cancel()
      local _, _, code = sleeper:join(t(5))
      assert.are.equal("cancelled", code)
      for _, bad in ipairs { 0 / 0, -1 } do
        assert.has_error(function() coronet.sleep(bad) end)
        assert.has_error(function() ivar:read():wait(bad) end)
        assert.has_error(function() coronet.ivar():read():wait(bad) end)
      end
      local _, r = helper.pair(function(sr) sr:read_line() end)
      assert.has_error(function() r:read_line { timeout = 0 / 0 } end)
    end)
  end)

  it("a main fiber sleeping math.huge with nothing else to wake it is a deadlock, not a hang", function()
    local ok, err = pcall(coronet.run, function() coronet.sleep(math.huge) end)
    assert.is_false(ok)
    assert.matches("deadlock", tostring(err), 1, true)
    helper.assert_clean()
  end)
end)

describe("connect's interrupt", function()
  it("from a connect that failed at once does not cut a later wait of the same fiber", function()
    helper.run(function()
      local stop = coronet.ivar()
      -- a hand-made target whose port the core refuses at once, before any wait
      local bad = { host = "localhost", port = 70000, description = "localhost:70000" }
      collectgarbage("stop") -- (the error message path of a name's connect has its own GC defect, specced elsewhere)
      local sock, err, code = coronet.tcp.connect(bad, { interrupt = stop:read() })
      collectgarbage("restart")
      assert.is_nil(sock, "the connect was meant to fail")
      assert.are.equal("EINVAL", code, tostring(err))
      coronet.spawn(function()
        coronet.sleep(t(0.02))
        stop:fill()
      end)
      local start = coronet.now()
      assert.is_true(coronet.sleep(t(0.2)))
      assert.is_true(coronet.now() - start >= t(0.2) - 0.005)
    end)
  end)
end)

describe("upon callbacks", function()
  it("run like spawn's fibers: an error ends the run with its traceback", function()
    local ok, err = pcall(coronet.run, function()
      local ivar = coronet.ivar()
      ivar:read():upon(function() error("upon-callback-broke") end)
      ivar:fill()
      coronet.sleep(t(5))
    end)
    assert.is_false(ok)
    assert.matches("upon-callback-broke", err, 1, true)
    assert.matches("stack traceback", err, 1, true)
    helper.assert_clean()
  end)

  it("cancelled at teardown after the main fiber returned, they do not make run raise", function()
    local result = coronet.run(function()
      local ivar = coronet.ivar()
      ivar:read():upon(function()
        local ok, err = coronet.sleep(t(5))
        if not ok then error(err) end -- raises as the teardown cancels it
      end)
      ivar:fill()
      coronet.sleep(0)
      coronet.sleep(0)
      return "main returned"
    end)
    assert.are.equal("main returned", result)
    helper.assert_clean()
  end)
end)

describe("error values", function()
  it("a table whose __index and __newindex raise is passed through untouched", function()
    local e = setmetatable({}, {
      __index = function() error("index-boom") end,
      __newindex = function() error("newindex-boom") end,
    })
    local ok, err = pcall(coronet.run, function() error(e) end)
    assert.is_false(ok)
    assert.are.equal(e, err)
    ok, err = pcall(coronet.run, function()
      coronet.spawn(function() error(e) end)
      coronet.sleep(t(5))
    end)
    assert.is_false(ok)
    assert.are.equal(e, err)
    helper.assert_clean()
  end)

  it("error(nil) in a fiber reaches run as nil", function()
    local ok, err = pcall(coronet.run, function() error(nil) end)
    assert.is_false(ok)
    assert.is_nil(err)
    ok, err = pcall(coronet.run, function()
      coronet.spawn(function() error(nil) end)
      coronet.sleep(t(5))
    end)
    assert.is_false(ok)
    assert.is_nil(err)
    helper.assert_clean()
  end)

  it("a plain table still gets its traceback field", function()
    local e = {}
    local ok, err = pcall(coronet.run, function() error(e) end)
    assert.is_false(ok)
    assert.are.equal(e, err)
    assert.matches("stack traceback", e.traceback, 1, true)
  end)
end)

describe("arguments checked before anything changes", function()
  it("coronet.run(nil) raises and leaves later runs working", function()
    for _, bad in ipairs { "nil", "string" } do
      local ok, err = pcall(coronet.run, bad == "nil" and nil or "not a function")
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'coronet.run' (function expected", tostring(err), 1, true)
      assert.is_false(core.is_running())
    end
    assert.are.equal(7, coronet.run(function() return 7 end))
    helper.assert_clean()
  end)

  it("coronet.signal raises at the call for an unknown name, inside and outside a run", function()
    local ok, err = pcall(coronet.signal, "SIGBOGUS")
    assert.is_false(ok)
    assert.matches("unknown signal name 'SIGBOGUS'", tostring(err), 1, true)
    helper.run(function()
      local ok2, err2 = pcall(coronet.signal, "SIGBOGUS")
      assert.is_false(ok2)
      assert.matches("unknown signal name", tostring(err2), 1, true)
      assert.is_false(pcall(coronet.signal, 15))
    end)
  end)
end)
