-- core.open_descriptor: a socket over a duplicate of any descriptor libuv
-- can stream (a pipe, a socket, a terminal); core.adopt_fd over one it takes.
local coronet = require "coronet"
local core = require "coronet.core"
local errors = require "coronet.errors"
local helper = require "spec.helper"

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  return data
end

-- A descriptor number this process does not have open.
local function closed_fd()
  for fd = 900, 2000 do
    if not io.open("/proc/self/fd/" .. fd) then return fd end
  end
end

-- The prelude a child Lua needs to find this build's coronet.
local function child_prelude()
  return ("package.path = %q .. package.path; package.cpath = %q .. package.cpath; "):format(
    "lua/?.lua;lua/?/init.lua;", package.cpath:match("^[^;]*") .. ";")
end

-- A child Lua that echoes each line of its stdin, prefixed, to its stdout,
-- both opened with core.open_descriptor; it ends at EOF.
local echo_child = [[
local coronet = require "coronet"
local core = require "coronet.core"
coronet.run(function()
  local input = assert(core.open_descriptor(io.stdin))
  local output = assert(core.open_descriptor(io.stdout))
  local r, w = input:reader(), output:writer()
  while true do
    local line = r:read_line()
    if not line then break end
    assert(w:write("echo:" .. line .. "\n"))
  end
  output:close()
  input:close()
  output:close_finished()
end)
io.stdout:write("stdout still mine\n")
]]

describe("core.open_descriptor", function()
  it("reads the read end of a pipe (io.popen) to EOF", function()
    helper.run(function()
      local f = assert(io.popen("printf 'a\\nb\\n'"))
      local sock = assert(core.open_descriptor(f))
      assert.matches("coronet.socket %(pipe%)", tostring(sock))
      helper.failed_with("ENOTSUP", sock:setoption("tcp-nodelay", true))
      helper.failed_with("ENOTSUP", sock:setoption("keepalive", true))
      local r = sock:reader()
      assert.equal("a", r:read_line())
      assert.equal("b", r:read_line())
      local line, _, code = r:read_line()
      assert.is_nil(line)
      assert.equal("closed", code)
      sock:close()
      assert.is_true(sock:close_finished(helper.t(2)))
      assert.is_true(f:close())
    end)
  end)

  it("writes the write end of a pipe: the reader sees the bytes and EOF once every copy is closed", function()
    local tmp = os.tmpname()
    helper.run(function()
      local f = assert(io.popen("cat > " .. tmp, "w"))
      local sock = assert(core.open_descriptor(f))
      -- a write-only descriptor: its reader is closed from the start
      local line, _, code = sock:reader():read_line()
      assert.is_nil(line)
      assert.equal("closed", code)
      assert(sock:writer():write("hello\nworld\n"))
      sock:writer():close() -- the reader half is already closed: the descriptor closes
      assert.is_true(sock:close_finished(helper.t(2)))
      -- the caller's descriptor is still open and usable
      assert(f:write("after\n"))
      assert.is_true(f:close())
    end)
    assert.equal("hello\nworld\nafter\n", slurp(tmp))
    os.remove(tmp)
  end)

  it("opens a duplicate of a coronet socket's descriptor; closing it leaves the original working", function()
    helper.run(function()
      local _, port = helper.server(helper.echo)
      local sock, r, w = helper.connect(port)
      local copy = assert(core.open_descriptor(sock:getfd()))
      assert.not_equal(sock:getfd(), copy:getfd())
      copy:reader():close() -- two readers of one socket would split its input
      assert(copy:writer():write("via copy\n"))
      assert.equal("via copy", r:read_line())
      -- closing the copy neither shuts the socket down nor resets it
      copy:abort()
      assert.is_true(copy:close_finished(helper.t(2)))
      assert(w:write("via original\n"))
      assert.equal("via original", r:read_line())
      sock:close()
    end)
  end)

  it("opens a LuaSocket socket's descriptor, which LuaSocket keeps", function()
    local socket = require "socket"
    helper.run(function()
      local _, port = helper.server(helper.echo)
      local ls = assert(socket.connect("127.0.0.1", port))
      local sock = assert(core.open_descriptor(ls:getfd()))
      local r, w = sock:reader(), sock:writer()
      assert(w:write("ping\n"))
      assert.equal("ping", r:read_line())
      sock:close()
      assert.is_true(sock:close_finished(helper.t(2)))
      assert.equal(6, ls:send("after\n"))
      ls:close()
    end)
  end)

  it("refuses a regular file with a clear error (EINVAL), leaving it open", function()
    local tmp = os.tmpname()
    helper.run(function()
      local f = assert(io.open(tmp, "r"))
      local fds = helper.open_fds()
      local sock, err, code = core.open_descriptor(f)
      assert.is_nil(sock)
      assert.equal("EINVAL", code)
      assert.is_true(errors.is(err, code))
      assert.matches("^descriptor %d+ is a regular file: libuv cannot stream it", tostring(err))
      assert.equal(fds, helper.open_fds())
      assert.equal("", f:read("a")) -- still open
      f:close()
    end)
    os.remove(tmp)
  end)

  it("refuses /dev/null, a device that is not a terminal", function()
    helper.run(function()
      local f = assert(io.open("/dev/null", "r"))
      local sock, err, code = core.open_descriptor(f)
      assert.is_nil(sock)
      assert.equal("EINVAL", code)
      assert.matches("is a device, not a terminal: libuv cannot stream it", tostring(err))
      f:close()
    end)
  end)

  it("refuses a descriptor that is not open (EBADF), naming it", function()
    helper.run(function()
      local fd = closed_fd()
      local sock, err, code = core.open_descriptor(fd)
      assert.is_nil(sock)
      assert.equal("EBADF", code)
      assert.matches("^descriptor " .. fd .. ": ", tostring(err))
      local sock2, _, code2 = core.adopt_fd(fd)
      assert.is_nil(sock2)
      assert.equal("EBADF", code2)
    end)
  end)

  it("raises on what is not a descriptor, and on a closed Lua file", function()
    helper.run(function()
      for _, bad in ipairs({ "x", {}, 1.5, true }) do
        assert.has_error(function() core.open_descriptor(bad) end)
      end
      assert.has_error(function() core.open_descriptor() end)
      assert.has_error(function() core.open_descriptor(-1) end, "bad argument #1 to 'open_descriptor' (not a file descriptor)")
      local f = assert(io.open("/dev/null"))
      f:close()
      assert.has_error(function() core.open_descriptor(f) end, "attempt to use a closed file")
    end)
  end)

  it("leaves no descriptor open after many opens and closes", function()
    helper.run(function()
      local f = assert(io.popen("printf x"))
      local before = helper.open_fds()
      for _ = 1, 50 do
        local sock = assert(core.open_descriptor(f))
        sock:close()
        assert.is_true(sock:close_finished(helper.t(2)))
      end
      assert.equal(before, helper.open_fds())
      assert.equal("x", f:read("a"))
      f:close()
    end)
  end)

  it("adopt_fd takes a LuaSocket descriptor over (success path)", function()
    local socket = require "socket"
    helper.run(function()
      local _, port = helper.server(helper.echo)
      local ls = assert(socket.connect("127.0.0.1", port))
      local fd = ls:getfd()
      ls:setfd(-1) -- LuaSocket lets go: the socket owns fd now
      ls:close()
      local sock = assert(core.adopt_fd(fd))
      assert(sock:writer():write("adopted\n"))
      assert.equal("adopted", sock:reader():read_line())
      sock:close()
      assert.is_true(sock:close_finished(helper.t(2)))
      assert.is_nil(io.open("/proc/self/fd/" .. fd)) -- closed with the socket
    end)
  end)

  it("a child Lua talks over its own stdin/stdout (pipes) opened as sockets", function()
    helper.run(function()
      local script = child_prelude() .. echo_child
      -- sh puts real pipes (not socket pairs) between the child Lua and us
      local p, stdin, stdout = core.spawn_process("sh", { "-c", "cat | lua5.4 -e \"$0\" | cat", script })
      assert(p, stdin)
      local w, r = stdin:writer(), stdout:reader()
      assert(w:write("one\ntwo\n"))
      assert.equal("echo:one", r:read_line())
      assert.equal("echo:two", r:read_line())
      w:close()
      assert.equal("stdout still mine", r:read_line())
      assert.is_nil(r:read_line())
      assert.equal(0, p:wait(helper.t(5)))
      stdin:close()
      stdout:close()
      p:close()
    end, 15)
  end)

  it("a child Lua opens its stdin and stdout as sockets when they are socket pairs", function()
    helper.run(function()
      local p, stdin, stdout = core.spawn_process("lua5.4", { "-e", child_prelude() .. echo_child })
      assert(p, stdin)
      assert(stdin:writer():write("x\n"))
      assert.equal("echo:x", stdout:reader():read_line())
      stdin:writer():close()
      assert.equal("stdout still mine", stdout:reader():read_line())
      assert.equal(0, p:wait(helper.t(5)))
      stdout:close()
      p:close()
    end, 15)
  end)

  it("opens a terminal (a pty made by script(1)) as a socket", function()
    helper.run(function()
      local child = child_prelude() .. [[
local coronet = require "coronet"
local core = require "coronet.core"
coronet.run(function()
  local out = assert(core.open_descriptor(io.stdout))
  local input = assert(core.open_descriptor(io.stdin))
  assert(out:writer():write(("tty-ok %s %s\n"):format(tostring(out):match("%((.-)%)"), tostring(input):match("%((.-)%)"))))
  input:close()
  out:close()
  out:close_finished()
end)
]]
      local file = os.tmpname()
      local f = assert(io.open(file, "w"))
      f:write(child)
      f:close()
      local command, preload = "lua5.4 " .. file, os.getenv("LD_PRELOAD")
      local args = { "-qec", command, "/dev/null" }
      if preload then -- the sanitizer run: ASan for the Lua child only (script itself leaks)
        args = { "-u", "LD_PRELOAD", "script", "-qec", ("env LD_PRELOAD=%q %s"):format(preload, command), "/dev/null" }
      end
      local p, stdin, stdout = core.spawn_process(preload and "env" or "script", args)
      assert(p, stdin)
      local text = stdout:reader():contents()
      os.remove(file)
      assert.matches("tty%-ok terminal terminal", text)
      assert.equal(0, p:wait(helper.t(5)))
      stdin:close()
      stdout:close()
      p:close()
    end, 15)
  end)
end)
