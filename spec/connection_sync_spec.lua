-- coronet.connection.sync: the blocking interface, used as a LuaSocket
-- script would, outside any coroutine. The servers are coronet.tcp servers
-- made outside coronet.run: their fibers run whenever a sync call runs the
-- loop.
local coronet = require "coronet"
local core = require "coronet.core"
local sync = require "coronet.connection.sync"
local helper = require "spec.helper"

local t = helper.t
local settle = helper.settle

local function close_server(server)
  server:close()
  settle()
end

describe("coronet.connection.sync", function()
  after_each(settle)

  it("connect, send, receive_line, receive and close, with no coroutine in sight", function()
    assert.is_nil(core.current())
    local server, port = helper.server(helper.echo)
    local conn = assert(sync.connect("127.0.0.1", port, { timeout = t(2) }))
    assert.is_true(conn:send("hello\n"))
    assert.equal("hello", conn:receive_line({ timeout = t(2) }))
    assert.is_true(conn:send("abcdef\n"))
    assert.equal("abc", conn:receive(3))
    assert.equal("def\n", conn:receive(4, { timeout = t(2) }))
    assert.equal("127.0.0.1", conn:remote_address().ip)
    conn:close()
    conn:close() -- idempotent
    close_server(server)
  end)

  it("a timeout returns nil, err, 'timeout' and leaves the bytes received buffered", function()
    local go = coronet.ivar()
    local server, port = helper.server(function(_, _, w)
      w:write("par")
      go.deferred:wait()
      w:write("tial\n")
    end)
    local conn = assert(sync.connect("127.0.0.1", port))
    local started = coronet.now()
    helper.failed_with("timeout", conn:receive_line({ timeout = t(0.2) }))
    assert.is_true(coronet.now() - started >= t(0.15))
    helper.failed_with("timeout", conn:receive(10, { timeout = 0 }))
    go:fill()
    assert.equal("partial", conn:receive_line({ timeout = t(2) }))
    conn:close()
    close_server(server)
  end)

  it("a refused connect returns nil, err, code naming the operation and host", function()
    local server, port = helper.server(function() end)
    close_server(server)
    local conn, err, code = sync.connect("127.0.0.1", port, { timeout = t(2) })
    assert.is_nil(conn)
    assert.equal("ECONNREFUSED", code)
    assert.equal("connect", err.op)
    assert.equal("127.0.0.1", err.arg)
  end)

  it("EOF is nil, err, 'closed'", function()
    local server, port = helper.server(function(_, _, w) w:write("bye\n") end)
    local conn = assert(sync.connect("127.0.0.1", port))
    assert.equal("bye", conn:receive_line())
    helper.failed_with("closed", conn:receive_line({ timeout = t(2) }))
    conn:close()
    close_server(server)
  end)

  it("a large send waits until the kernel has it, while the server reads", function()
    local counted = coronet.ivar()
    local server, port = helper.server(function(_, r)
      local n = 0
      while true do
        local chunk = r:read()
        if not chunk then break end
        n = n + #chunk
      end
      counted:fill(n)
    end)
    local conn = assert(sync.connect("127.0.0.1", port))
    local big = string.rep("0123456789", 400000)
    assert.is_true(conn:send(big))
    conn:close()
    -- the server's fiber finishes reading while the loop runs
    local deadline = coronet.now() + t(5)
    while not counted:is_full() and coronet.now() < deadline do coronet.step(0.01) end
    assert.equal(#big, counted.deferred:peek())
    close_server(server)
  end)

  it("raises inside a running loop, and on bad arguments", function()
    helper.run(function()
      local ok, err = pcall(sync.connect, "127.0.0.1", 1)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("inside a running loop", 1, true))
    end)
    assert.has_error(function() sync.connect(1, 1) end)
    assert.has_error(function() sync.connect("127.0.0.1", -1) end)
    assert.has_error(function() sync.connect("127.0.0.1", 1, { timeout = "x" }) end)
    local server, port = helper.server(helper.echo)
    local conn = assert(sync.connect("127.0.0.1", port))
    assert.has_error(function() conn:send(42) end)
    assert.has_error(function() conn:receive(-1) end)
    assert.has_error(function() sync.SyncConnection.send({}, "x") end)
    conn:close()
    close_server(server)
  end)
end)
