-- coronet.net.run_server with workers: OS threads, each with its own Lua
-- state, loop and SO_REUSEPORT listener; control stays in the calling state.
local coronet = require "coronet"
local net = require "coronet.net"
local helper = require "helper"

local t = helper.t
local HANDLER = "net_workers_fixture:echo"

local function listen()
  local listening = assert(net.listen(coronet.address("127.0.0.1", 0), { reuse_port = true }))
  return listening, listening:getsockname().port
end

-- A client that sends `lines` one at a time, checking each echo; returns the count echoed.
local function echo_client(port, lines)
  return coronet.spawn(function()
    local sock, r, w = helper.connect(port)
    local echoed = 0
    for i = 1, lines do
      w:write("line ", i, "\n")
      if r:read_line() == "line " .. i then echoed = echoed + 1 end
    end
    sock:close()
    return echoed
  end)
end

local function close(listening)
  listening:close()
  assert(listening:close_finished(t(2)))
end

describe("net.run_server with workers", function()
  it("gives worker states' handlers flows with their Lua methods (flow:write), though no worker loads coronet.tcp", function()
    helper.run(function()
      local listening, port = listen()
      local stop = coronet.ivar()
      local errors_seen = {}
      local server = coronet.spawn(net.run_server, listening, "net_workers_fixture:flow_echo",
        { workers = 2, stop = stop.deferred, on_error = function(err) errors_seen[#errors_seen + 1] = tostring(err) end })
      -- Until the worker threads listen, every client queues on the calling state's listener.
      coronet.sleep(t(0.5))
      local clients = {}
      for i = 1, 40 do clients[i] = echo_client(port, 1) end
      for _, c in ipairs(clients) do assert.are.equal(1, c:join(t(5))) end
      stop:fill("stopped")
      local _, stats = server:join(t(5))
      assert.are.same({}, errors_seen)
      assert.are.equal(40, stats.accepted)
      close(listening)
    end, 20)
  end)

  it("serves concurrent clients on every worker and sums the stats", function()
    helper.run(function()
      local listening, port = listen()
      local stop = coronet.ivar()
      local server = coronet.spawn(net.run_server, listening, HANDLER, { workers = 2, stop = stop.deferred })
      local clients = {}
      for i = 1, 40 do clients[i] = echo_client(port, 5) end
      for _, c in ipairs(clients) do assert.are.equal(5, c:join(t(5))) end
      stop:fill("stopped")
      local value, stats = server:join(t(5))
      assert.are.equal("stopped", value, tostring(stats))
      assert.are.same({ accepted = 40, connections = 40, handler_errors = 0, workers = 2 }, stats)
      close(listening)
    end, 20)
  end)

  it("stops gracefully: open connections on every worker finish first", function()
    helper.run(function()
      local listening, port = listen()
      local stop, release = coronet.ivar(), coronet.ivar()
      local server = coronet.spawn(net.run_server, listening, HANDLER, { workers = 3, stop = stop.deferred })
      local clients = {}
      for i = 1, 12 do
        clients[i] = coronet.spawn(function()
          local sock, r, w = helper.connect(port)
          w:write("hello\n")
          local line = r:read_line()
          release.deferred:wait(t(5))
          w:write("again\n") -- still served after stop
          local again = r:read_line()
          sock:close()
          return line == "hello" and again == "again"
        end)
      end
      assert.is_true(helper.eventually(function()
        for _, c in ipairs(clients) do if c:is_done() then return false end end
        return true
      end))
      coronet.sleep(t(0.2))
      stop:fill(7)
      coronet.sleep(t(0.2))
      assert.is_false(server:is_done())
      release:fill()
      for _, c in ipairs(clients) do assert.is_true(c:join(t(5))) end
      local value, stats = server:join(t(5))
      assert.are.equal(7, value)
      assert.are.equal(12, stats.connections)
      assert.are.equal(3, stats.workers)
      close(listening)
    end, 20)
  end)

  it("gives handler errors from every worker to on_error with err.worker and the address", function()
    helper.run(function()
      local listening, port = listen()
      local stop = coronet.ivar()
      local seen = {}
      local server = coronet.spawn(net.run_server, listening, HANDLER, {
        workers = 2, stop = stop.deferred,
        on_error = function(err, address) seen[#seen + 1] = { err = err, address = address } end,
      })
      -- Clients that connect before worker 2 listens all queue on the
      -- calling state's listener: batches go on until worker 2 served one.
      local sent, workers = 0, {}
      local function from_thread() for _, e in ipairs(seen) do if e.err.worker == 2 then return true end end end
      while not from_thread() and sent < 400 do
        local clients = {}
        for i = 1, 8 do
          clients[i] = coronet.spawn(function()
            local sock, _, w = helper.connect(port)
            w:write("fail\n")
            sock:reader():contents()
            sock:close()
          end)
        end
        for _, c in ipairs(clients) do c:join(t(5)) end
        sent = sent + 8
        assert.is_true(helper.eventually(function() return #seen == sent end, 5))
      end
      for _, e in ipairs(seen) do
        workers[e.err.worker] = true
        assert.are.equal("spec_failure", e.err.code)
        assert.are.equal(42, e.err.detail)
        assert.are.equal("127.0.0.1", e.address.ip)
        assert.are.equal(e.address, e.err.address)
        assert.truthy(tostring(e.err):find("worker " .. e.err.worker, 1, true))
      end
      assert.is_true(workers[2], "no error came from the worker thread")
      stop:fill(true)
      local _, stats = server:join(t(5))
      assert.are.equal(sent, stats.handler_errors)
      close(listening)
    end, 20)
  end)

  it("raises naming the module when a worker cannot load it, before accepting anyone", function()
    helper.run(function()
      local listening, port = listen()
      _G.CORONET_SPEC_MAIN_STATE = true
      local early = coronet.spawn(function()
        local sock = coronet.tcp.connect(helper.to(port))
        if sock then
          sock:reader():contents()
          sock:close()
        end
      end)
      local ok, err = pcall(net.run_server, listening, "net_workers_main_only:echo", { workers = 2 })
      _G.CORONET_SPEC_MAIN_STATE = nil
      assert.is_false(ok)
      assert.truthy(tostring(err):find("net_workers_main_only", 1, true), tostring(err))
      assert.truthy(tostring(err):find("worker 2", 1, true), tostring(err))
      assert.are.equal(0, listening:stats().accepted)
      close(listening)
      early:join(t(2))
    end, 20)
  end)

  it("raises on misuse, naming the module that fails in the calling state", function()
    helper.run(function()
      local listening = listen()
      local plain = assert(net.listen(coronet.address("127.0.0.1", 0)))
      assert.has_error(function() net.run_server(listening, function() end, { workers = 2 }) end)
      assert.has_error(function() net.run_server(plain, HANDLER, { workers = 2 }) end)
      local ok, err = pcall(net.run_server, listening, "no_such_module_here:serve", { workers = 2 })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("no_such_module_here", 1, true))
      ok, err = pcall(net.run_server, listening, "net_workers_fixture:nothing", { workers = 2 })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("nothing", 1, true))
      close(listening)
      close(plain)
    end)
  end)

  it("closes everything at once when its fiber is cancelled", function()
    helper.run(function()
      local listening, port = listen()
      local server = coronet.spawn(net.run_server, listening, HANDLER, { workers = 2 })
      local ended = 0
      local clients = {}
      for i = 1, 8 do
        clients[i] = coronet.spawn(function()
          local sock, r, w = helper.connect(port)
          w:write("hi\n")
          r:read_line()
          r:contents()
          ended = ended + 1
          sock:close()
        end)
      end
      assert.is_true(helper.eventually(function()
        return listening:num_connections() >= 1 and ended == 0 and coronet.sleep(t(0.2))
      end))
      server:cancel()
      local none, _, code = server:join(t(5))
      assert.is_nil(none)
      assert.are.equal("cancelled", code)
      for _, c in ipairs(clients) do c:join(t(2)) end
      assert.are.equal(8, ended)
      close(listening)
    end, 20)
  end)

  it("ends with closed when the listening socket closes, stopping every worker", function()
    helper.run(function()
      local listening, port = listen()
      local server = coronet.spawn(net.run_server, listening, HANDLER, { workers = 2 })
      assert.are.equal(3, echo_client(port, 3):join(t(5)))
      listening:close()
      local none, _, code = server:join(t(5))
      assert.is_nil(none)
      assert.are.equal("closed", code)
      assert(listening:close_finished(t(2)))
    end, 20)
  end)
end)
