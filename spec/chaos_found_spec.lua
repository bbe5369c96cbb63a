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
