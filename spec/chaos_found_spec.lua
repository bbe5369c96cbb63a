-- Defects found by the randomized interleaving test (spec/chaos_spec.lua),
-- each reduced to a small deterministic case.
local coronet = require "coronet"
local helper = require "helper"

describe("chaos-found: a peer that sends FIN, then a reset", function()
  it("reads to a clean end (\"closed\"), not EPIPE: the FIN came first, every byte arrived", function()
    helper.run(function()
      local sent = coronet.ivar()
      local _, port = helper.server(function(_, r, w)
        w:write("hello")
        w:close() -- FIN after "hello"
        sent.deferred:wait()
        r:socket():abort() -- the client's bytes are unread: a reset follows the FIN
      end)
      -- a full buffer stops reading, so FIN and reset both wait in the kernel
      local sock, r, w = helper.connect(port, { reader_buffer_size = 5 })
      coronet.sleep(helper.t(0.05))
      assert(w:write(("x"):rep(100)))
      assert(w:flush())
      sent:fill()
      coronet.sleep(helper.t(0.1))
      assert.equal("hello", r:read())
      local data, err, code = r:read()
      assert.is_nil(data)
      assert.equal("closed", code, tostring(err))
      sock:close()
    end)
  end)
end)

describe("chaos-found: a write while another fiber's write waits for room", function()
  it("gets busy even once the mark is raised, so the waiting write's bytes keep their place", function()
    helper.run(function()
      local release = coronet.ivar()
      local _, port = helper.server(function(_, r) -- reads only once released
        release.deferred:wait()
        while r:read() do end
      end)
      local sock, _, w = helper.connect(port, { writer_buffer_size = 1, reader_buffer_size = 1 << 25 })
      assert(w:write(("x"):rep(16 << 20))) -- far more than the kernel takes: pending stays above the mark
      local first = coronet.spawn(function() return w:write("A") end)
      coronet.sleep(helper.t(0.05))
      assert.is_false(first:is_done())
      sock:configure({ writer_buffer_size = 64 << 20 }) -- the mark is now far above what is pending
      local ok, err, code = w:write("B")
      release:fill()
      assert.is_true(first:join(helper.t(5)))
      assert.is_nil(ok, "the second write passed the waiting one")
      assert.equal("busy", code, tostring(err))
      sock:close()
    end, 20)
  end)
end)
