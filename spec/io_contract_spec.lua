-- spec/io_contract_spec.lua: the reader, writer, socket and address contract
-- at its edges (issue 7): "busy" changes nothing, a cap fails only when
-- passed, a failed write takes nothing, close wakes waiters with "closed",
-- use after close answers "closed", misuse raises naming the option.
local coronet = require "coronet"
local helper = require "helper"
local errors = coronet.errors

local pair = helper.pair

-- A server that sends `data` and closes.
local function sends(data, client_opts)
  return pair(function(_, w) w:write(data) end, client_opts)
end

local function failed_with(code, ...)
  local value, err, got = ...
  assert.is_nil(value)
  assert.equal(code, got)
  assert.is_true(errors.is(err, code))
end

describe("reader: busy changes nothing", function()
  it("receive while another fiber reads returns busy and leaves the partial bytes to the first reader", function()
    helper.run(function()
      local go = coronet.ivar()
      local _, r = pair(function(_, w)
        w:write("start-")
        w:flush()
        go.deferred:wait()
        w:write("end\n")
      end)
      assert.equal("s", r:peek(1)) -- "start-" is buffered
      local first = coronet.spawn(function() return r:read_line({ timeout = helper.t(3) }) end)
      coronet.sleep(helper.t(0.02))
      local v, err, partial = r:receive("*l")
      assert.is_nil(v)
      assert.equal("busy", err)
      assert.equal("", partial)
      v, err, partial = r:receive(2, "pre-")
      assert.is_nil(v)
      assert.equal("busy", err)
      assert.equal("pre-", partial)
      failed_with("busy", r:read(1)) -- even when the buffer could serve it
      failed_with("busy", r:peek(1))
      go:fill()
      assert.equal("start-end", first:join(helper.t(3)))
    end)
  end)
end)

describe("reader: a cap fails only when passed", function()
  it("contents() and receive('*a') return exactly reader_buffer_size bytes from a peer that sent the cap and closed", function()
    helper.run(function()
      local body = string.rep("c", 128)
      local _, r = sends(body, { reader_buffer_size = 128 })
      assert.equal(body, r:contents())
      local _, r2 = sends(body, { reader_buffer_size = 128 })
      assert.equal(body, r2:receive("*a"))
    end)
  end)

  it("one byte past the cap still fails with line_too_long, keeping the bytes", function()
    helper.run(function()
      local body = string.rep("c", 129)
      local _, r = sends(body, { reader_buffer_size = 128 })
      failed_with("line_too_long", r:contents())
      assert.equal(body, r:really_read(129))
    end)
  end)

  it("a line of cap-1 bytes ends in \\n or in \\r\\n alike; cap bytes are too long", function()
    helper.run(function()
      local line = string.rep("l", 127)
      local _, r = sends(line .. "\r\n" .. line .. "\n" .. line .. "\r\n" .. line .. "l\r\n", { reader_buffer_size = 128 })
      assert.equal(line, r:read_line())
      assert.equal(line, r:read_line())
      assert.equal(line, r:receive("*l"))
      failed_with("line_too_long", r:read_line())
    end)
  end)

  it("receive(2.5) reads 2 bytes, as LuaSocket does", function()
    helper.run(function()
      local _, r = sends("abcdef")
      assert.equal("ab", r:receive(2.5))
      assert.equal("cde", r:receive(3.99))
    end)
  end)
end)

describe("use after close", function()
  it("getfd() and bind() after close return nil, err, \"closed\"", function()
    helper.run(function()
      local s = coronet.tcp.socket()
      assert.is_true(math.type(s:getfd()) == "integer" and s:getfd() >= 0)
      s:close()
      failed_with("closed", s:getfd())
      failed_with("closed", s:bind(coronet.address("127.0.0.1", 0)))
      s:close_finished()
    end)
  end)

  it("an address compared with another userdata is false, never an error", function()
    helper.run(function()
      local a = coronet.address("127.0.0.1", 80)
      local s = coronet.tcp.socket()
      assert.is_false(a == s)
      assert.is_false(s == a)
      assert.is_false(a == io.stdout)
      assert.is_true(a == coronet.address("127.0.0.1", 80))
      s:close()
    end)
  end)
end)
