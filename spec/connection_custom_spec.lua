-- coronet.connection.custom and spawn: Procord connections over pipes, a
-- child process's stdio and the process's own stdin/stdout.
local coronet = require "coronet"
local connection = require "coronet.connection"
local helper = require "spec.helper"

local t = helper.t

-- Polls until pred() holds (update + wait on the connection), inside a fiber.
local function until_true(conn, pred, limit) return helper.poll_until(conn, pred, limit or 3) end

-- Programs run under the sanitizer build inherit LD_PRELOAD=libasan, whose
-- leak check aborts them at exit: run them without it.
local function program(name) return "env", { "-u", "LD_PRELOAD", name } end

local function tmpname()
  return os.tmpname()
end

describe("coronet.connection over descriptors", function()
  it("custom{input = a pipe}: lines, then the EOF as a disconnection (closed, op read), the rest still buffered", function()
    helper.run(function()
      local pipe = assert(io.popen("printf 'one\\ntwo\\nrest'"))
      local conn = assert(connection.custom { input = pipe, data = "d" })
      assert.equal("connected", conn:state())
      assert.equal("d", conn:data())
      assert.is_nil(conn:remote_address())
      until_true(conn, function() return conn:state() == "disconnected" end)
      local _, err, code = conn:state()
      assert.equal("closed", code)
      assert.equal("read", err.op)
      assert.equal("one", conn:receive_line())
      assert.equal("two", conn:receive_line())
      assert.equal("rest", conn:receive_all())
      pipe:close() -- the caller's descriptor stayed open: it is the caller's to close
    end)
  end)

  it("custom{output = a pipe}: sends reach the reading process once close_nicely has flushed", function()
    local path = tmpname()
    helper.run(function()
      local pipe = assert(io.popen("cat > " .. path, "w"))
      local conn = assert(connection.custom { output = pipe })
      for i = 1, 50 do assert.is_true(conn:send(("line %d\n"):format(i))) end
      assert.is_nil(conn:receive_line()) -- no input: nothing is ever received
      conn:close_nicely()
      until_true(conn, function() return conn:state() == "disconnected" end)
      assert.is_nil(select(2, conn:state()))
      pipe:close() -- the last copy of the write end: cat reads EOF and exits
    end)
    local f = assert(io.open(path))
    local data = f:read("a")
    f:close()
    os.remove(path)
    local expected = {}
    for i = 1, 50 do expected[i] = ("line %d\n"):format(i) end
    assert.equal(table.concat(expected), data)
  end)

  it("custom with no descriptor: sends are dropped, nothing is received; a timeout still applies", function()
    helper.run(function()
      local conn = assert(connection.custom { timeout = t(0.2) })
      assert.is_true(conn:send("dropped"))
      assert.equal("", conn:receive_all())
      until_true(conn, function() return conn:state() == "disconnected" end)
      local _, err, code = conn:state()
      assert.equal("timeout", code)
      assert.equal("idle", err.op)
    end)
  end)

  it("a regular file and a closed descriptor are clear errors; bad arguments raise", function()
    helper.run(function()
      local path = tmpname()
      local f = assert(io.open(path, "w"))
      local conn, err, code = connection.custom { input = f }
      assert.is_nil(conn)
      assert.equal("EINVAL", code)
      assert.is_truthy(tostring(err):find("regular file", 1, true))
      f:close()
      os.remove(path)
      helper.failed_with("EBADF", connection.custom { input = 999 })
      local pipe = assert(io.popen("true"))
      helper.failed_with("EBADF", connection.custom { input = pipe, output = 998 })
      pipe:close()
      assert.has_error(function() connection.custom { input = "stdin" } end)
      assert.has_error(function() connection.custom { input = -1 } end)
      assert.has_error(function() connection.custom("x") end)
      assert.has_error(function() connection.custom { remote_address = "x" } end)
      local closed = assert(io.popen("true"))
      closed:close()
      assert.has_error(function() connection.custom { input = closed } end)
    end)
  end)

  it("spawn: a child process over pipes (bc answers each line), then its exit", function()
    helper.run(function()
      local file, args = program("bc")
      args[#args + 1] = "-q"
      local bc = assert(connection.spawn(file, args, { data = "calc" }))
      assert.equal("connected", bc:state())
      for _, case in ipairs { { "1 + 2", "3" }, { "2 ^ 64", "18446744073709551616" }, { "7 / 2", "3" } } do
        bc:send(case[1] .. "\n")
        local line
        until_true(bc, function()
          line = bc:receive_line()
          return line ~= nil
        end)
        assert.equal(case[2], line)
      end
      bc:send("quit\n")
      until_true(bc, function() return bc:state() == "disconnected" end)
      assert.equal("closed", select(3, bc:state()))
      assert.equal(0, bc:process():wait(t(3)))
    end)
  end)

  it("spawn of a program that does not exist is ENOENT, nothing left open", function()
    helper.run(function()
      helper.failed_with("ENOENT", connection.spawn("/no/such/program-coronet", {}))
      assert.has_error(function() connection.spawn(42) end)
    end)
  end)

  it("a child Lua process uses its own stdin and stdout as a connection", function()
    local script = [[
      package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      package.cpath = "build/?.so;" .. package.cpath
      local connection = require "coronet.connection"
      local conn = assert(connection.custom { input = io.stdin, output = io.stdout })
      local waiter = connection.waiter(conn)
      while true do
        conn:update()
        local line = conn:receive_line()
        if line then conn:send("echo: " .. line .. "\n") end
        if not line and not conn:alive() then break end
        if not line then connection.wait(waiter, { timeout = 1 }) end
      end
      conn:close_nicely()
      while conn:alive() do connection.wait(waiter, { timeout = 0.05 }); conn:update() end
    ]]
    helper.run(function()
      local child = assert(connection.spawn("lua5.4", { "-e", script }))
      child:send("hello\nworld\n")
      local lines = {}
      until_true(child, function()
        local line = child:receive_line()
        if line then lines[#lines + 1] = line end
        return #lines == 2
      end, 5)
      assert.same({ "echo: hello", "echo: world" }, lines)
      child:close_nicely() -- the child reads EOF, says goodbye by closing, and exits
      assert.equal(0, child:process():wait(t(5)))
    end)
  end)

  it("examples/child_process.lua asks bc and prints each answer", function()
    local root = assert(io.popen("pwd")):read("l")
    local p = assert(io.popen(("cd / && env -u LD_PRELOAD lua5.4 %s/examples/child_process.lua '1 + 2' '2 ^ 10' 2>&1")
      :format(root)))
    local out = p:read("a")
    assert.is_true(p:close(), out)
    assert.equal("1 + 2 = 3\n2 ^ 10 = 1024\n", out)
  end)
end)
