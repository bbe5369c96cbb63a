-- spec/net_dns_spec.lua: net.getaddrinfo, getaddrinfo_stream,
-- getaddrinfo_datagram and getnameinfo. Real lookups stay few: "localhost"
-- and literals are answered locally (/etc/hosts), and the sandbox's
-- resolver stalls after a couple of dozen queries, so only one name goes
-- out to DNS (an *.invalid name, which no resolver answers with an address).
local helper = require "helper"
local coronet = require "coronet"
local core = require "coronet.core"
local net = require "coronet.net"

local t = helper.t

-- The addresses' text, in order.
local function texts(addresses)
  local out = {}
  for i, a in ipairs(addresses) do out[i] = tostring(a) end
  return out
end

local function contains(addresses, text)
  for _, a in ipairs(addresses) do
    if tostring(a) == text then return true end
  end
  return false
end

describe("net.getaddrinfo", function()
  it("resolves localhost to address values with the service's port", function()
    helper.run(function()
      local addresses, err = net.getaddrinfo("localhost", { service = 8080 })
      assert(addresses, err)
      assert.is_true(#addresses >= 1)
      assert.is_true(contains(addresses, "127.0.0.1:8080"), table.concat(texts(addresses), " "))
      for _, a in ipairs(addresses) do
        assert.is_true(core.is_address(a))
        assert.are.equal(8080, a.port)
      end
    end)
  end)

  it("lists each address once, though the resolver gives one entry per socket type", function()
    helper.run(function()
      local addresses = assert(net.getaddrinfo("127.0.0.1"))
      assert.are.same({ "127.0.0.1:0" }, texts(addresses))
    end)
  end)

  it("resolves numeric hosts of both families without DNS", function()
    helper.run(function()
      assert.are.same({ "[::1]:53" }, texts(assert(net.getaddrinfo("::1", { service = "53" }))))
      local v4 = assert(net.getaddrinfo_datagram("127.0.0.1", { service = 53 }))
      assert.are.same({ "127.0.0.1:53" }, texts(v4))
      assert.are.equal("inet", v4[1].family)
    end)
  end)

  it("takes a service name and filters by socket type", function()
    helper.run(function()
      local stream = assert(net.getaddrinfo_stream("127.0.0.1", { service = "http" }))
      assert.are.same({ "127.0.0.1:80" }, texts(stream))
    end)
  end)

  it("returns EAI_SERVICE for an unknown service name", function()
    helper.run(function()
      local addresses, err, code = net.getaddrinfo("127.0.0.1", { service = "no-such-service-here" })
      assert.is_nil(addresses)
      assert.are.equal("EAI_SERVICE", code)
      assert.are.equal("EAI_SERVICE", err.code)
      assert.matches("no%-such%-service%-here", tostring(err))
    end)
  end)

  it("returns EAI_NONAME for an *.invalid name", function()
    helper.run(function()
      local addresses, err, code = net.getaddrinfo("coronet-spec.invalid", { timeout = t(10) })
      assert.is_nil(addresses)
      assert.are.equal("EAI_NONAME", code)
      assert.matches("coronet%-spec%.invalid", tostring(err))
    end, 20)
  end)

  it("refuses a host with a NUL byte or over 255 bytes as EAI_NONAME, as connect does", function()
    helper.run(function()
      local _, _, code = net.getaddrinfo("127.0.0.1\0.evil.example")
      assert.are.equal("EAI_NONAME", code)
      _, _, code = net.getaddrinfo(string.rep("a", 256))
      assert.are.equal("EAI_NONAME", code)
      _, _, code = net.getaddrinfo("")
      assert.are.equal("EAI_NONAME", code)
    end)
  end)

  it("raises on a port outside 0..65535 and on bad arguments", function()
    helper.run(function()
      for _, service in ipairs({ 65536, -1, "65536", "99999999999", 1.5 }) do
        assert.has_error(function() net.getaddrinfo("127.0.0.1", { service = service }) end)
      end
      assert.has_error(function() net.getaddrinfo(nil) end)
      assert.has_error(function() net.getaddrinfo("localhost", "http") end)
      assert.has_error(function() net.getaddrinfo("localhost", { service = {} }) end)
      assert.has_error(function() net.getaddrinfo("localhost", { service = "ht\0tp" }) end)
      assert.has_error(function() net.getaddrinfo("localhost", { timeout = -1 }) end)
      assert.are.equal(65535, assert(net.getaddrinfo("127.0.0.1", { service = 65535 }))[1].port)
    end)
  end)

  it("raises outside a fiber, naming coronet.spawn", function()
    assert.has_error(function() net.getaddrinfo("localhost") end)
    local ok, err = pcall(net.getaddrinfo, "localhost")
    assert.is_false(ok)
    assert.matches("coronet.spawn", err)
  end)

  it("detaches a timed-out lookup: it returns at once and leaves nothing open", function()
    helper.run(function()
      local addresses, err, code = net.getaddrinfo("localhost", { timeout = 0 })
      assert.is_nil(addresses)
      assert.are.equal("timeout", code)
      assert.are.equal("timeout", err.code)
      assert.are.equal(0, core.live())
    end)
  end)

  it("detaches a cancelled lookup; the fiber gets cancelled", function()
    helper.run(function()
      local fiber = coronet.spawn(function()
        return net.getaddrinfo("localhost")
      end)
      coronet.sleep(0) -- the fiber now waits for its lookup
      fiber:cancel()
      local r, err, code = fiber:join(t(2))
      assert.is_nil(r)
      assert.are.equal("cancelled", code, tostring(err))
      -- the lookup ran on; the loop is not kept waiting for it
      assert.are.equal(0, core.live())
    end)
  end)
end)

describe("net.getnameinfo", function()
  it("names 127.0.0.1 port 80 localhost and http", function()
    helper.run(function()
      local host, service = net.getnameinfo(coronet.address("127.0.0.1", 80))
      assert.are.equal("localhost", host)
      assert.are.equal("http", service)
    end)
  end)

  it("gives the numeric text of a port without a service name", function()
    helper.run(function()
      local host, service = net.getnameinfo(coronet.address("127.0.0.1", 1), { datagram = true })
      assert.are.equal("localhost", host)
      assert.is_string(service)
    end)
  end)

  it("raises for a unix address or a value that is not an address", function()
    helper.run(function()
      assert.has_error(function() net.getnameinfo(coronet.unix_address("/tmp/x.sock")) end)
      assert.has_error(function() net.getnameinfo("127.0.0.1") end)
    end)
  end)

  it("detaches a timed-out reverse lookup", function()
    helper.run(function()
      local host, _, code = net.getnameinfo(coronet.address("127.0.0.1", 80), { timeout = 0 })
      assert.is_nil(host)
      assert.are.equal("timeout", code)
    end)
  end)
end)
