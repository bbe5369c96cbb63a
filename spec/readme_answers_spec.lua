-- spec/readme_answers_spec.lua: README's "What users asked, answered", one
-- describe per answer, so the README cannot drift from the behaviour. (The
-- ninth, stopping on SIGINT, is in stopping_spec.lua.)
local coronet = require "coronet"
local helper = require "helper"
local t = helper.t

-- A server that writes `payload`, then (unless `keep_open`) closes; returns
-- the client's socket and reader once `settle` seconds have passed.
local function served(payload, settle, keep_open)
  local hold = coronet.ivar()
  local _, port = helper.server(function(_, _, w)
    if payload ~= "" then w:write(payload) end
    if keep_open then hold:read():wait() end
  end)
  local sock, reader, writer = helper.connect(port)
  coronet.sleep(t(settle))
  return sock, reader, writer, hold
end

-- A child lua5.4 running `source` from / with only LUA_PATH and LUA_CPATH
-- pointing at the checkout; its output and exit status.
local function run_outside(source) return helper.child(source, { outside = true }) end

describe("1. read([max])", function()
  it("returns everything buffered at once, up to the cap by default", function()
    helper.run(function()
      local sock, reader = served(("x"):rep(100000), 0.1)
      assert(helper.eventually(function() return reader:buffered() == 65536 end, 5))
      assert.are.equal(65536, reader:capacity())
      local got = assert(reader:read({ timeout = 0 }))  -- buffered: no wait, so no timeout
      assert.are.equal(65536, #got)
      sock:close()
    end)
  end)

  it("takes at most max, leaving the rest buffered", function()
    helper.run(function()
      local sock, reader = served("0123456789", 0.05)
      assert.are.equal("0123", reader:read(4))
      assert.are.equal(6, reader:buffered())
      assert.are.equal("456789", reader:read())
      sock:close()
    end)
  end)

  it("waits only when nothing is buffered", function()
    helper.run(function()
      local sock, reader, _, hold = served("", 0, true)
      local _, _, code = reader:read({ timeout = t(0.05) })
      assert.are.equal("timeout", code)
      hold:fill()
      sock:close()
    end)
  end)
end)

describe("2. buffered()", function()
  it("counts coronet's buffer, filled in the background up to the cap, not the kernel's", function()
    helper.run(function()
      local sock, reader = served(("y"):rep(200000), 0.1)
      assert(helper.eventually(function() return reader:buffered() == reader:capacity() end, 5))
      coronet.sleep(t(0.05))
      assert.are.equal(reader:capacity(), reader:buffered()) -- the rest waits in the kernel
      sock:close()
    end)
  end)
end)

describe("3. peek(n)", function()
  it("waits until n bytes have arrived and consumes nothing", function()
    helper.run(function()
      local _, port = helper.server(function(_, _, w)
        w:write("ab"); w:flush(); coronet.sleep(t(0.1)); w:write("cd")
      end)
      local sock, reader = helper.connect(port)
      local t0 = coronet.now()
      assert.are.equal("abcd", reader:peek(4))
      assert.is_true(coronet.now() - t0 >= t(0.05))
      assert.are.equal(4, reader:buffered())
      assert.are.equal("abcd", reader:read())
      sock:close()
    end)
  end)
end)

describe("4. at_eof()", function()
  it("never waits: false while the peer is open, true once the EOF is seen and nothing is buffered", function()
    helper.run(function()
      local sock, reader, _, hold = served("", 0.05, true)
      assert.is_false(reader:at_eof())                  -- returns at once
      hold:fill()                                      -- the server's handler returns: EOF
      assert(helper.eventually(function() return reader:at_eof() end, 5),
        "the background read did not see the EOF")
      assert.are.equal(0, reader:buffered())
      sock:close()
    end)
  end)

  it("stays false while bytes are buffered, and while a full buffer keeps the EOF unseen", function()
    helper.run(function()
      local sock, reader = served(("z"):rep(100000), 0.1)
      assert(helper.eventually(function() return reader:buffered() == reader:capacity() end, 5))
      coronet.sleep(t(0.05))
      assert.is_false(reader:at_eof())     -- the peer has closed; coronet has not read that far
      local total = 0
      repeat
        local got = reader:read()
        total = total + (got and #got or 0)
      until not got
      assert.are.equal(100000, total)
      assert.is_true(reader:at_eof())
      sock:close()
    end)
  end)
end)

describe("5. writes without flush()", function()
  it("several writes in one turn leave together at the end of the turn", function()
    helper.run(function()
      local received = coronet.ivar()
      local _, port = helper.server(function(_, r)
        received:fill(r:read())                       -- the first chunk the server gets
      end)
      local sock, _, writer = helper.connect(port)
      local expected = {}
      for i = 1, 10 do
        writer:write("part", i, ";")
        expected[i] = "part" .. i .. ";"
      end
      expected = table.concat(expected)
      assert.are.equal(#expected, writer:pending())  -- nothing has left during the turn
      assert.are.equal(expected, received:read():wait(t(5))) -- one chunk, no flush called
      sock:close()
    end)
  end)

  it("flush() waits until the kernel has every byte, and reports a failed peer", function()
    helper.run(function()
      local sock, _, writer = served("", 0.05, true)
      writer:write("hello")
      assert.is_true(writer:flush(t(5)))
      assert.are.equal(0, writer:pending())
      sock:close()
    end)
  end)
end)

describe("6. write() accepts numbers", function()
  it("as io.write does", function()
    helper.run(function()
      local got = coronet.ivar()
      local _, port = helper.server(function(_, r) got:fill(r:contents()) end)
      local sock, _, writer = helper.connect(port)
      writer:write(1, 2.5, " ", -3, " ", 2^63)
      writer:close()
      assert.are.equal("12.5 -3 " .. tostring(2^63), got:read():wait(t(5)))
      sock:close()
    end)
  end)
end)

describe("7. returning from a handler", function()
  it("flushes pending writes before the connection closes", function()
    helper.run(function()
      local big = ("w"):rep(4 * 1024 * 1024)           -- far more than the kernel's buffers
      local _, port = helper.server(function(_, _, w) w:write(big) end)
      local sock, reader = helper.connect(port)
      coronet.sleep(t(0.1))                            -- the handler has returned by now
      local got = {}
      while true do
        local chunk = reader:read()
        if not chunk then break end
        got[#got + 1] = chunk
      end
      assert.are.equal(#big, #table.concat(got))
      sock:close()
    end)
  end)
end)

describe("8. a numeric address skips DNS", function()
  -- libuv starts its threadpool (four threads) at the first lookup: a
  -- process that connected only to numeric addresses still has one thread.
  local function threads_after(host)
    local out = run_outside(([[
      local coronet = require "coronet"
      local tcp = coronet.tcp
      coronet.run(function()
        local server = assert(tcp.Server.create(tcp.Where_to_listen.of_address(coronet.address("127.0.0.1", 0)),
          function() end))
        local sock = assert(tcp.connect(tcp.Where_to_connect.of_host_and_port(%q, server:listening_on())))
        sock:close()
      end)
      for line in io.lines("/proc/self/status") do
        local n = line:match("^Threads:%%s*(%%d+)")
        if n then print("THREADS " .. n) end
      end
    ]]):format(host))
    return tonumber(out:match("THREADS (%d+)")), out
  end

  it("127.0.0.1: no lookup, the threadpool never starts", function()
    local n, out = threads_after("127.0.0.1")
    assert.are.equal(1, n, out)
  end)

  it("localhost: a lookup on the threadpool (the control)", function()
    local n, out = threads_after("localhost")
    assert.is_true(n and n > 1, out)
  end)
end)

describe("10. loading coronet from outside the checkout", function()
  it("a script anywhere finds it through LUA_PATH and LUA_CPATH alone", function()
    local out, status = run_outside([[
      local coronet = require "coronet"
      local conn = require "coronet.connection"
      print(coronet.run(function() return "loaded " .. type(conn.sync.connect) end))
    ]])
    assert.are.equal(0, status, out)
    assert.matches("loaded function", out, 1, true)
  end)
end)
