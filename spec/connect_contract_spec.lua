-- spec/connect_contract_spec.lua: what core.connect and tcp.connect promise at
-- the edges: odd host names, sockets given by the caller, writes before
-- connect, per-attempt timeouts.
local helper = require "helper"
local coronet = require "coronet"
local core = require "coronet.core"

local tcp = coronet.tcp

describe("host names the resolver cannot take", function()
  it("a host with an embedded NUL fails as EAI_NONAME, never connecting to the part before the NUL", function()
    helper.run(function()
      local accepted = 0
      local server, port = helper.server(function() accepted = accepted + 1 end)
      local host = "127.0.0.1\0.evil.example"
      local sock, err, code = core.connect { host = host, port = port, timeout = 2 }
      assert.is_nil(sock)
      assert.are.equal("EAI_NONAME", code)
      assert.are.equal(host, err.address)
      coronet.sleep(0.05)
      assert.are.equal(0, accepted)
      helper.await(server:close())
    end)
  end)

  it("a host of 256 bytes or more fails as EAI_NONAME, like one of 255, without raising", function()
    helper.run(function()
      for _, len in ipairs { 255, 256, 1000 } do
        local host = string.rep("a", len - #".invalid") .. ".invalid"
        local ok, sock, err, code = pcall(tcp.connect, tcp.Where_to_connect.of_host_and_port(host, 80))
        assert.is_true(ok, sock)
        assert.is_nil(sock)
        assert.are.equal("EAI_NONAME", code, len)
        assert.are.equal(host, err.address)
      end
    end)
  end)
end)

describe("connect error values under garbage-collection stress", function()
  -- A cancelled fiber's connect fails at once, through the same path as a
  -- DNS failure (the message names host:port), without asking a resolver.
  it("a connect failing before any address was tried builds its message from memory the collector keeps", function()
    helper.run(function()
      local done = coronet.ivar()
      local fiber = coronet.spawn(function()
        coronet.sleep(10)
        local old = collectgarbage("generational", 1, 100)
        for i = 1, 3000 do
          local junk = {}
          for j = 1, i % 97 do junk[j] = tostring(j) .. "x" end
          local sock, err, code = core.connect { host = "no-such-host-coronet.invalid", port = 80 }
          assert(sock == nil and code == "cancelled", code)
          assert(tostring(err):find("connect to no-such-host-coronet.invalid:80", 1, true), tostring(err))
        end
        collectgarbage(old)
        done:fill(true)
      end)
      coronet.sleep(0.01)
      fiber:cancel()
      helper.await(done.deferred)
    end)
  end)
end)
