-- spec/where_async_names_spec.lua: the remaining names of Async's Tcp, so code
-- translated from OCaml reads the same: Where_to_listen.bind_to with
-- Bind_to_address and Bind_to_port, Where_to_listen.create{...}, and the
-- older Where_to_connect spellings (to_host_and_port, to_file,
-- to_inet_address, to_unix_address). Each listens and connects for real on
-- loopback.
local coronet = require "coronet"
local helper = require "helper"

local tcp = coronet.tcp
local Where_to_connect, Where_to_listen = tcp.Where_to_connect, tcp.Where_to_listen
local Bind_to_address, Bind_to_port = tcp.Bind_to_address, tcp.Bind_to_port

local function raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.matches(pattern, tostring(err), 1, true)
end

-- A server at `where_to` answering each line with "echo: " .. line; returns the server.
local function echo_server(where_to)
  return assert(tcp.Server.create(where_to, function(_, reader, writer)
    local line = reader:read_line(helper.t(5))
    if line then writer:write("echo: ", line, "\n") end
  end))
end

-- Connects to `where_to`, sends `line` and returns the reply.
local function exchange(where_to, line)
  return tcp.with_connection(where_to, function(_, reader, writer)
    writer:write(line, "\n")
    return assert(reader:read_line(helper.t(5)))
  end, { timeout = helper.t(5) })
end

local function temp_socket_path()
  local path = os.tmpname()
  os.remove(path)
  return path .. ".sock"
end

describe("Where_to_listen.bind_to (Bind_to_address, Bind_to_port)", function()
  it("localhost() with on_port_chosen_by_os() listens on 127.0.0.1; to_host_and_port connects", function()
    helper.run(function()
      local server = echo_server(Where_to_listen.bind_to(Bind_to_address.localhost(), Bind_to_port.on_port_chosen_by_os()))
      local address = server:listening_on_address()
      assert.are.equal("127.0.0.1", address.ip)
      local port = server:listening_on()
      assert.are.equal("integer", math.type(port))
      assert.is_true(port > 0)
      assert.are.equal("echo: hi", exchange(Where_to_connect.to_host_and_port("127.0.0.1", port), "hi"))
      server:close()
      server:close_finished():wait()
    end)
  end)

  it("all_addresses() binds the wildcard address, reachable on loopback", function()
    helper.run(function()
      local server = echo_server(Where_to_listen.bind_to(Bind_to_address.all_addresses(), Bind_to_port.on_port_chosen_by_os()))
      local ip = server:listening_on_address().ip
      assert.is_true(ip == "0.0.0.0" or ip == "::", "bound to " .. tostring(ip))
      local loopback = ip == "::" and "::1" or "127.0.0.1"
      assert.are.equal("echo: all", exchange(Where_to_connect.to_host_and_port(loopback, server:listening_on()), "all"))
      server:close()
      server:close_finished():wait()
    end)
  end)

  it("address(ip) binds that IP literal (IPv4, and IPv6 where the host has it)", function()
    helper.run(function()
      local server = echo_server(Where_to_listen.bind_to(Bind_to_address.address("127.0.0.1"), Bind_to_port.on_port_chosen_by_os()))
      assert.are.equal("127.0.0.1", server:listening_on_address().ip)
      assert.are.equal("echo: v4", exchange(Where_to_connect.to_inet_address(server:listening_on_address()), "v4"))
      server:close()
      server:close_finished():wait()
      local server6 = tcp.Server.create(Where_to_listen.bind_to(Bind_to_address.address("::1"), Bind_to_port.on_port_chosen_by_os()),
        function(_, reader, writer) writer:write("echo: ", reader:read_line(helper.t(5)) or "", "\n") end)
      if server6 then -- a host without IPv6 refuses to bind ::1; the value was still made
        assert.are.equal("::1", server6:listening_on_address().ip)
        assert.are.equal("echo: v6", exchange(Where_to_connect.to_host_and_port("::1", server6:listening_on()), "v6"))
        server6:close()
        server6:close_finished():wait()
      end
    end)
  end)

  it("on_port(p) listens on exactly that port", function()
    helper.run(function()
      -- a port the OS just handed out and took back: free, as far as a test can know
      local probe = echo_server(Where_to_listen.bind_to(Bind_to_address.localhost(), Bind_to_port.on_port_chosen_by_os()))
      local port = probe:listening_on()
      probe:close()
      probe:close_finished():wait()
      local server = echo_server(Where_to_listen.bind_to(Bind_to_address.localhost(), Bind_to_port.on_port(port)))
      assert.are.equal(port, server:listening_on())
      assert.are.equal("echo: fixed", exchange(Where_to_connect.to_host_and_port("localhost", port), "fixed"))
      server:close()
      server:close_finished():wait()
    end)
  end)

  it("the values are the same as on_port's and of_address's", function()
    assert.are.equal(Where_to_listen.on_port(8080).address,
                     Where_to_listen.bind_to(Bind_to_address.all_addresses(), Bind_to_port.on_port(8080)).address)
    assert.are.equal(coronet.address("127.0.0.1", 0),
                     Where_to_listen.bind_to(Bind_to_address.localhost(), Bind_to_port.on_port_chosen_by_os()).address)
    assert.are.equal(coronet.address("::1", 9),
                     Where_to_listen.bind_to(Bind_to_address.address("::1"), Bind_to_port.on_port(9)).address)
  end)

  it("misuse raises, naming the function and the argument", function()
    raises("bad argument #1 to 'Where_to_listen.bind_to' (a Bind_to_address value expected, got '127.0.0.1')",
      Where_to_listen.bind_to, "127.0.0.1", Bind_to_port.on_port(80))
    raises("bad argument #2 to 'Where_to_listen.bind_to' (a Bind_to_port value expected, got 80)",
      Where_to_listen.bind_to, Bind_to_address.localhost(), 80)
    raises("bad argument #1 to 'Where_to_listen.bind_to' (a Bind_to_address value expected, got table)",
      Where_to_listen.bind_to, Bind_to_port.on_port(80), Bind_to_address.localhost())
    raises("bad argument #2 to 'Where_to_listen.bind_to' (a Bind_to_port value expected, got nil)",
      Where_to_listen.bind_to, Bind_to_address.localhost())
    raises("bad argument #1 to 'Bind_to_address.address' (an IPv4 or IPv6 address literal expected, got 'localhost')",
      Bind_to_address.address, "localhost")
    raises("bad argument #1 to 'Bind_to_address.address' (an IPv4 or IPv6 address literal expected, got nil)",
      Bind_to_address.address)
    raises("bad argument #1 to 'Bind_to_address.address' (an IPv4 or IPv6 address literal expected, got '127.0.0.1:80')",
      Bind_to_address.address, "127.0.0.1:80")
    raises("bad argument #1 to 'Bind_to_port.on_port' (a port 0..65535 expected, got 65536)", Bind_to_port.on_port, 65536)
    raises("bad argument #1 to 'Bind_to_port.on_port' (a port 0..65535 expected, got -1)", Bind_to_port.on_port, -1)
    raises("bad argument #1 to 'Bind_to_port.on_port' (a port 0..65535 expected, got 80.5)", Bind_to_port.on_port, 80.5)
    raises("bad argument #1 to 'Bind_to_port.on_port' (a port 0..65535 expected, got '80')", Bind_to_port.on_port, "80")
  end)
end)

describe("Where_to_listen.create{socket_type=, address=, listening_on=}", function()
  it("listens on the address; server:listening_on() is listening_on(bound address)", function()
    helper.run(function()
      local seen
      local server = echo_server(Where_to_listen.create {
        socket_type = "tcp",
        address = coronet.address("127.0.0.1", 0),
        listening_on = function(address)
          seen = address
          return ("%s port %d"):format(address.ip, address.port)
        end,
      })
      local port = server:listening_on_address().port
      assert.are.equal("127.0.0.1 port " .. port, server:listening_on())
      assert.are.equal(server:listening_on_address(), seen) -- the bound address, the OS's port in it
      assert.are.equal("echo: made", exchange(Where_to_connect.to_host_and_port("127.0.0.1", port), "made"))
      server:close()
      server:close_finished():wait()
    end)
  end)

  it("unix: listens on the path; to_file and to_unix_address connect; listening_on defaults to the path", function()
    helper.run(function()
      local path = temp_socket_path()
      local server = echo_server(Where_to_listen.create { socket_type = "unix", address = coronet.unix_address(path) })
      assert.are.equal(path, server:listening_on())
      assert.are.equal("echo: file", exchange(Where_to_connect.to_file(path), "file"))
      assert.are.equal("echo: addr", exchange(Where_to_connect.to_unix_address(coronet.unix_address(path)), "addr"))
      server:close()
      server:close_finished():wait()
    end)
  end)

  it("without socket_type and listening_on: as of_address (the port for inet)", function()
    helper.run(function()
      local server = echo_server(Where_to_listen.create { address = coronet.address("127.0.0.1", 0) })
      assert.are.equal(server:listening_on_address().port, server:listening_on())
      server:close()
      server:close_finished():wait()
    end)
  end)

  it("misuse raises, naming the function and the field", function()
    local inet, unix = coronet.address("127.0.0.1", 0), coronet.unix_address("/tmp/x.sock")
    raises("bad argument #1 to 'Where_to_listen.create' (a table {socket_type=, address=, listening_on=} expected, got '127.0.0.1')",
      Where_to_listen.create, "127.0.0.1")
    raises("Where_to_listen.create: bad field 'address' (an address value expected, got nil)",
      Where_to_listen.create, { socket_type = "tcp" })
    raises("Where_to_listen.create: bad field 'address' (an address value expected, got '127.0.0.1:80')",
      Where_to_listen.create, { address = "127.0.0.1:80" })
    raises("Where_to_listen.create: bad field 'socket_type' (\"tcp\" or \"unix\" expected, got 'udp')",
      Where_to_listen.create, { socket_type = "udp", address = inet })
    raises("Where_to_listen.create: bad field 'socket_type' (\"tcp\" does not fit the unix address /tmp/x.sock)",
      Where_to_listen.create, { socket_type = "tcp", address = unix })
    raises("Where_to_listen.create: bad field 'socket_type' (\"unix\" does not fit the inet address 127.0.0.1:0)",
      Where_to_listen.create, { socket_type = "unix", address = inet })
    raises("Where_to_listen.create: bad field 'listening_on' (a function expected, got 1)",
      Where_to_listen.create, { address = inet, listening_on = 1 })
  end)
end)

describe("the older Where_to_connect spellings", function()
  it("are the of_ constructors, under Async's older names", function()
    assert.are.equal(Where_to_connect.of_host_and_port, Where_to_connect.to_host_and_port)
    assert.are.equal(Where_to_connect.of_file, Where_to_connect.to_file)
    local a = coronet.address("127.0.0.1", 80)
    assert.are.same(Where_to_connect.of_address(a), Where_to_connect.to_inet_address(a))
    local u = coronet.unix_address("/tmp/x.sock")
    assert.are.same(Where_to_connect.of_address(u), Where_to_connect.to_unix_address(u))
  end)

  it("to_inet_address takes only inet addresses, to_unix_address only unix ones", function()
    raises("bad argument #1 to 'Where_to_connect.to_inet_address' (an inet address expected, got the unix address /tmp/x.sock)",
      Where_to_connect.to_inet_address, coronet.unix_address("/tmp/x.sock"))
    raises("bad argument #1 to 'Where_to_connect.to_unix_address' (a unix address expected, got the inet6 address [::1]:80)",
      Where_to_connect.to_unix_address, coronet.address("::1", 80))
    raises("bad argument #1 to 'Where_to_connect.to_inet_address' (an inet address expected, got '127.0.0.1:80')",
      Where_to_connect.to_inet_address, "127.0.0.1:80")
    raises("bad argument #1 to 'Where_to_connect.to_unix_address' (a unix address expected, got nil)",
      Where_to_connect.to_unix_address)
  end)

  it("to_inet_address connects to an IPv6 address too (inet6 is inet)", function()
    helper.run(function()
      local server = tcp.Server.create(Where_to_listen.of_address(coronet.address("::1", 0)), function(_, reader, writer)
        writer:write("echo: ", reader:read_line(helper.t(5)) or "", "\n")
      end)
      if not server then return end -- no IPv6 on this host
      assert.are.equal("echo: six", exchange(Where_to_connect.to_inet_address(server:listening_on_address()), "six"))
      server:close()
      server:close_finished():wait()
    end)
  end)

  it("coronet.where holds the same tables as coronet.tcp", function()
    local where = require "coronet.where"
    assert.are.equal(where.Bind_to_address, tcp.Bind_to_address)
    assert.are.equal(where.Bind_to_port, tcp.Bind_to_port)
    assert.are.equal(where.Where_to_listen, tcp.Where_to_listen)
  end)
end)
