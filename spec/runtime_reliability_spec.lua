-- spec/runtime_reliability_spec.lua: the runtime never crashes, never
-- touches freed memory and always ends: waits where a fiber cannot yield,
-- stray resumes, fibers that ignore cancellation, step, nested runs, the
-- logger, and the bookkeeping of deferreds (upon handles, timed waits).
local coronet = require "coronet"
local core = require "coronet.core"
local deferred = require "coronet.deferred"
local helper = require "helper"

local t = helper.t

-- Runs `script` (Lua source using coronet) with `program` (given the script
-- and the repository root) bounded by `limit` seconds, with `env` (e.g.
-- "NAME=value") set; returns its output and whether it exited with status 0.
-- For behaviours whose failure is a hang or a crash of the whole process.
local function run_script_with(program, script, limit, env)
  local prelude = ("package.path = %q .. package.path; package.cpath = %q .. package.cpath; "):format(
    "lua/?.lua;lua/?/init.lua;", package.cpath:match("^[^;]*") .. ";")
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(prelude, script)
  f:close()
  local p = assert(io.popen(("%s timeout %d %s %s . 2>&1"):format(env or "", math.ceil(t(limit)), program, path)))
  local out = p:read("a")
  local ok = p:close()
  os.remove(path)
  return out, ok
end

local function run_script(script, limit) return run_script_with("lua5.4", script, limit) end

-- A client connected to a server that writes "line\n" each time the client
-- sends "go\n": the client's reader has nothing buffered until it asks.
local function on_demand_pair()
  return helper.pair(function(r, w)
    while r:read_line() == "go" do w:write("line\n") end
  end)
end

describe("a wait where the fiber cannot yield", function()
  local boundaries = {
    { "a table.sort comparator", function(wait) table.sort({ 3, 1, 2 }, function(a, b) wait() return a < b end) end },
    { "a string.gsub callback", function(wait) ("x"):gsub("x", function() wait() end) end },
    { "a __tostring metamethod",
      function(wait) return tostring(setmetatable({}, { __tostring = function() wait() return "" end })) end },
    { "a load reader function", function(wait)
      local fn, err = load(function() wait() end)
      if not fn then error(err, 0) end
    end },
  }
  for _, case in ipairs(boundaries) do
    it("raises clearly inside " .. case[1] .. ", attaches nothing, and the fiber's next wait works", function()
      helper.run(function()
        local _, r, w = on_demand_pair()
        local ok, err = pcall(case[2], function() return r:read_line() end)
        assert.is_false(ok)
        assert.matches("cannot yield here", tostring(err), 1, true)
        ok, err = pcall(case[2], function() return coronet.sleep(t(0.01)) end)
        assert.is_false(ok)
        assert.matches("cannot yield here", tostring(err), 1, true)
        collectgarbage()
        -- the fiber is still a fiber: its waits work, and the reader has no stale waiter
        assert.is_true(coronet.sleep(0))
        assert(w:write("go\n"))
        assert.are.equal("line", r:read_line())
        assert(w:write("go\n"))
        assert.are.equal("line", r:read_line())
      end)
    end)
  end

  it("leaves no waiter behind when the fiber that tried dies and bytes arrive later (ASan)", function()
    helper.run(function()
      local _, r, w = on_demand_pair()
      local f = coronet.spawn(function()
        return pcall(table.sort, { 2, 1 }, function(a, b) r:read_line() return a < b end)
      end)
      assert.is_false((f:join(t(5))))
      f = nil
      collectgarbage()
      collectgarbage()
      assert(w:write("go\n"))
      assert.are.equal("line", r:read_line())
    end)
  end)
end)

describe("a stray coroutine.resume of a waiting fiber", function()
  local waits = {
    { "sleep", function() return coronet.sleep(t(0.1)) end, true },
    { "a deferred wait", function(d) return d:wait(t(5)) end, "filled" },
  }
  for _, case in ipairs(waits) do
    it("is refused with a clear error during " .. case[1] .. "; the real wake-up still arrives once", function()
      helper.run(function()
        local ivar = coronet.ivar()
        local co, wakes, results = nil, 0, nil
        local sleeper = coronet.spawn(function()
          co = coroutine.running()
          results = table.pack(case[2](ivar:read()))
          wakes = wakes + 1
          return "woke"
        end)
        coronet.sleep(0)
        coronet.sleep(0)
        helper.refuse_strays(co)
        -- from a coroutine of another fiber too
        local ok, value = coroutine.wrap(function() return coroutine.resume(co) end)()
        assert.is_true(ok)
        assert.is_nil(value)
        assert.are.equal(0, wakes)
        ivar:fill("filled")
        assert.are.equal("woke", sleeper:join(t(5)))
        assert.are.equal(1, wakes)
        assert.are.equal(case[3], results[1])
      end)
    end)
  end

  it("is refused during a read, and the read still returns its line", function()
    helper.run(function()
      local _, r, w = on_demand_pair()
      local co
      local reader = coronet.spawn(function()
        co = coroutine.running()
        return r:read_line()
      end)
      coronet.sleep(t(0.01))
      local ok, value = coroutine.resume(co)
      assert.is_true(ok)
      assert.is_nil(value)
      assert(w:write("go\n"))
      assert.are.equal("line", reader:join(t(5)))
    end)
  end)
end)

describe("a stray coroutine.resume of a fiber at a bare coroutine.yield()", function()
  -- There the fiber is plain Lua with no coronet continuation: the stray
  -- resume runs it (it cannot wait meanwhile), and coronet copes if it ends.
  it("runs it as plain Lua; if it ends there, the fiber is finished and joinable, and nothing crashes", function()
    helper.run(function()
      local co
      local f = coronet.spawn(function()
        co = coroutine.running()
        for _ = 1, 3 do coroutine.yield() end
        return "ended"
      end)
      coronet.sleep(0)
      for _ = 1, 5 do coroutine.resume(co) end
      assert.are.equal("dead", coroutine.status(co))
      assert.are.equal("ended", f:join(t(5)))
      assert.is_true(helper.eventually(function() return f.core:is_dead() end))
    end)
  end)
end)

describe("a cancelled signal wait", function()
  it("closes its watcher at once, not at the run's end", function()
    helper.run(function()
      local f = coronet.spawn(function() return core.signal_wait("SIGUSR2") end)
      coronet.sleep(t(0.01))
      assert.are.equal(1, core.live())
      f:cancel()
      local _, _, code = f:join(t(2))
      assert.are.equal("cancelled", code)
      assert.is_true(helper.eventually(function() return core.live() == 0 end))
    end)
  end)
end)

describe("coronet.run always ends", function()
  local loops = {
    { "on coronet.signal(name):wait()", [[
      coronet.spawn(function() while true do coronet.signal("SIGUSR2"):wait() end end)
      coronet.sleep(0.02)]] },
    { "on tcp.connect to a refused port", [[
      local server = coronet.tcp.Server.create(coronet.tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0)),
        function() end)
      local port = server:listening_on()
      server:close():wait(5)
      coronet.spawn(function()
        -- (an address, not a host name: the name path's own defect is another spec's)
        local refused = coronet.tcp.Where_to_connect.of_address(coronet.address("127.0.0.1", port))
        while true do coronet.tcp.connect(refused) end
      end)
      coronet.sleep(0.05)]] },
    { "on a bare coroutine.yield()", [[
      coronet.spawn(function() while true do coroutine.yield() end end)
      coronet.sleep(0.02)]] },
  }
  for _, case in ipairs(loops) do
    it("when a fiber that ignores cancellation loops " .. case[1], function()
      local out, ok = run_script(([[
        local coronet = require "coronet"
        local core = require "coronet.core"
        coronet.run(function()
          %s
        end)
        io.write("returned ", core.fiber_count(), " ", core.live())
      ]]):format(case[2]), 20)
      assert.are.equal("returned 0 0", out)
      assert.is_true(ok)
    end)
  end

  it("a bare coroutine.yield() in a fiber resumes on the next turn", function()
    helper.run(function()
      local turns = 0
      local f = coronet.spawn(function()
        for _ = 1, 3 do
          coroutine.yield()
          turns = turns + 1
        end
        return "yielded"
      end)
      assert.are.equal("yielded", f:join(t(5)))
      assert.are.equal(3, turns)
    end)
  end)
end)

describe("coronet.step(timeout)", function()
  it("drives a 0.1 s sleep in a handful of steps and then returns false, leaving nothing behind", function()
    local f = coronet.spawn(function() return coronet.sleep(0.1) end)
    local steps, start = 0, coronet.now()
    while coronet.step(t(1)) do
      steps = steps + 1
      assert.is_true(steps < 50, "step spins")
    end
    assert.is_true(f:is_done())
    assert.is_true(steps <= 6, "steps: " .. steps)
    assert.is_true(coronet.now() - start >= 0.09)
    local t0 = coronet.now()
    assert.is_false(coronet.step(t(1)))
    assert.is_true(coronet.now() - t0 < 0.5, "an idle step(1) does not wait")
    assert.is_false(coronet.step(0))
    helper.assert_clean()
  end)

  it("rejects a negative or NaN timeout", function()
    assert.has_error(function() coronet.step(-1) end)
    assert.has_error(function() coronet.step(0 / 0) end)
    helper.assert_clean()
  end)
end)

describe("run and step from inside a fiber while the loop runs", function()
  it("are refused clearly and close nothing of the caller", function()
    local results = {}
    local f = coronet.spawn(function()
      local server, port = helper.server(helper.echo)
      local sock, r, w = helper.connect(port)
      results.run = table.pack(pcall(coronet.run, function() return "nested" end))
      results.step = table.pack(pcall(coronet.step, 0))
      results.step1 = table.pack(pcall(coronet.step, t(0.01)))
      -- the caller's connection and server still work
      assert(w:write("still here\n"))
      results.line = r:read_line()
      sock:close()
      server:close()
      return "done"
    end)
    local steps = 0
    while not f:is_done() do
      coronet.step(t(0.5))
      steps = steps + 1
      assert.is_true(steps < 1000)
    end
    while coronet.step(0) do end
    for _, key in ipairs { "run", "step", "step1" } do
      assert.is_false(results[key][1], key)
      assert.matches("already running", tostring(results[key][2]), 1, true)
    end
    assert.are.equal("still here", results.line)
    assert.is_false(f.core:is_cancelled())
    assert.are.equal("done", f.done.value[1][2])
    helper.assert_clean()
  end)
end)

describe("run and step from a fiber while a host runs the loop it lent (embed_host)", function()
  it("are refused clearly and close nothing of the caller", function()
    local host = package.cpath:match("^([^;]*)/%?%.so") .. "/embed_host"
    local exists = io.open(host)
    if not exists then return pending("embed_host is not built") end
    exists:close()
    local out = run_script_with(host, [[
      local coronet = require "coronet"
      local tcp = coronet.tcp
      coronet.spawn(function()
        local server = assert(tcp.Server.create(tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0)),
          function(_, r, w) w:write(r:read_line(), "\n") end))
        local ok1, e1 = pcall(coronet.run, function() return 1 end)
        local ok2, e2 = pcall(coronet.step, 0)
        local to = tcp.Where_to_connect.of_address(coronet.address("127.0.0.1", server:listening_on()))
        local sock, r, w = assert(tcp.connect(to))
        w:write("still here\n")
        io.write(tostring(ok1), " ", tostring(ok2), " ", tostring(r:read_line()), "\n", tostring(e1), "\n",
          tostring(e2), "\n")
        sock:close()
        server:close()
        embed_done = true
      end)
    ]], 20, "CORONET_EMBED_HOST_LOOP=1")
    local first, e1, e2 = out:match("^([^\n]*)\n([^\n]*)\n([^\n]*)")
    assert.are.equal("false false still here", first, out)
    assert.matches("already running", e1, 1, true)
    assert.matches("already running", e2, 1, true)
  end)
end)

describe("the logger", function()
  after_each(function() coronet.set_logger(nil) end)

  it("runs on its own thread, protected: raising, waiting or yielding loggers reach neither libuv nor the fiber", function()
    local threads = {}
    local function bad_error() return setmetatable({}, { __tostring = function() error("tostring too") end }) end
    coronet.set_logger(function(msg)
      threads[#threads + 1] = coroutine.running()
      if msg == "raise" then error(bad_error()) end
      if msg == "wait" then coronet.sleep(1) end
      if msg == "yield" then coroutine.yield() end
    end)
    helper.run(function()
      core.log("raise")
      core.log("wait")
      core.log("yield")
      assert.is_true(coronet.sleep(0))
    end)
    core.log("outside")
    assert.are.equal(4, #threads)
    local main = coroutine.running()
    for _, th in ipairs(threads) do
      assert.are_not.equal(main, th)
      assert.are.equal(threads[1], th)
    end
  end)
end)

describe("Deferred:upon handles", function()
  it("upon returns a handle whose cancel removes the callback; cancel is idempotent", function()
    helper.run(function()
      local ivar = coronet.ivar()
      local ran = {}
      local a = ivar:read():upon(function() ran[#ran + 1] = "a" end)
      ivar:read():upon(function() ran[#ran + 1] = "b" end)
      assert.are.equal(2, deferred.pending_count(ivar))
      a:cancel()
      a:cancel()
      assert.are.equal(1, deferred.pending_count(ivar))
      ivar:fill(1)
      coronet.sleep(0)
      coronet.sleep(0)
      assert.are.same({ "b" }, ran)
      a:cancel() -- after the fill: nothing to do
    end)
  end)

  it("a shared stop deferred across 1000 reconnects keeps 0 pending callbacks", function()
    helper.run(function()
      local port = helper.closed_port()
      local stop = coronet.ivar()
      local _, server_port = helper.server(function() end)
      for i = 1, 1000 do
        local target = (i % 2 == 0) and server_port or port
        local sock = coronet.tcp.connect(helper.to(target), { interrupt = stop:read() })
        if sock then sock:close() end
      end
      assert.are.equal(0, deferred.pending_count(stop))
    end, 60)
  end)
end)

describe("timed waits on one deferred", function()
  -- Counts (in tens) the VM instructions the waiters run: each waiter hooks
  -- its own fiber (debug.sethook's hooks are per thread).
  local function instructions_for(n)
    local count = 0
    local function hook() count = count + 1 end
    helper.run(function()
      local ivar = coronet.ivar()
      local fibers = {}
      for i = 1, n do
        fibers[i] = coronet.spawn(function()
          debug.sethook(hook, "", 10)
          return ivar:read():wait(t(0.05))
        end)
      end
      for i = 1, n do fibers[i]:join(t(30)) end
      assert.are.equal(0, deferred.pending_count(ivar))
    end, 120)
    return count
  end

  it("cost O(1) each to remove: 4x the waiters cost well under 16x the work", function()
    local small, large = instructions_for(500), instructions_for(2000)
    assert.is_true(large < small * 8, ("instructions (x100): %d for 500 waiters, %d for 2000"):format(small, large))
  end)
end)
