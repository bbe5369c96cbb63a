-- spec/gc_spec.lua: to-be-closed variables, garbage collection of sockets,
-- readers, writers and fibers, and descriptor leaks.
local helper = require "helper"
local coronet = require "coronet"
local core = require "coronet.core"

local tcp = coronet.tcp
local t = helper.t

local function full_gc()
  for _ = 1, 3 do collectgarbage("collect") end
end

-- A server whose handler reads everything until EOF and reports it (data, end code).
local function draining_server()
  local reports = {}
  local server, port = helper.server(function(_, reader)
    local parts = {}
    while true do
      local data, _, code = reader:read()
      if not data then
        reports[#reports + 1] = { data = table.concat(parts), code = code }
        return
      end
      parts[#parts + 1] = data
    end
  end)
  return server, port, reports
end

describe("to-be-closed variables", function()
  it("a socket closes at the end of its scope, without waiting, flushing what was written", function()
    helper.run(function()
      local server, port, reports = draining_server()
      local sock, _, w = helper.connect(port)
      local payload = string.rep("z", 32 * 1024) -- below the writer's high-water mark
      local other_ran = false
      coronet.spawn(function() other_ran = true end)
      do
        local s <close> = sock
        assert(w:write(payload))
      end
      -- the close did not yield (the fiber spawned above has not run yet)
      assert.is_false(other_ran)
      assert.is_true(sock:is_closed())
      assert.is_true(sock:close_finished(t(2)))
      assert.is_true(helper.eventually(function() return #reports == 1 end))
      assert.are.equal(#payload, #reports[1].data)
      assert.is_true(reports[1].data == payload)
      assert.are.equal("closed", reports[1].code)
      assert.is_true(other_ran)
      helper.await(server:close())
    end)
  end)

  it("a reader closes at the end of its scope; the writer keeps working", function()
    helper.run(function()
      local server, port, reports = draining_server()
      local sock, r, w = helper.connect(port)
      do
        local rr <close> = r
      end
      assert.is_true(r:is_closed())
      assert.is_false(sock:is_closed())
      assert.has_error(function() r:read() end, "reader is closed")
      assert(w:write("still writing"))
      w:close()
      -- reader and writer both closed: the descriptor closes
      assert.is_true(sock:close_finished(t(2)))
      assert.is_true(helper.eventually(function() return #reports == 1 end))
      assert.are.equal("still writing", reports[1].data)
      assert.are.equal("closed", reports[1].code)
      helper.await(server:close())
    end)
  end)

  it("a writer closes at the end of its scope: the peer reads EOF, the reader keeps working", function()
    helper.run(function()
      local server, port = helper.server(function(_, reader, writer)
        local data = reader:contents()
        writer:write("got " .. #data)
      end)
      local sock, r, w = helper.connect(port)
      local other_ran = false
      coronet.spawn(function() other_ran = true end)
      do
        local ww <close> = w
        assert(ww:write("12345"))
      end
      assert.is_false(other_ran)
      assert.is_true(w:is_closed())
      assert.has_error(function() w:write("x") end, "writer is closed")
      assert.are.equal("got 5", r:contents({ timeout = t(2) }))
      sock:close()
      assert.is_true(sock:close_finished(t(2)))
      helper.await(server:close())
    end)
  end)

  it("a server closes at the end of its scope, without waiting", function()
    helper.run(function()
      local server, port = helper.server(function() end)
      local other_ran = false
      coronet.spawn(function() other_ran = true end)
      do
        local s <close> = server
      end
      assert.is_false(other_ran)
      assert.is_true(server:is_closed())
      helper.await(server:close_finished())
      local sock, _, code = tcp.connect(helper.to(port))
      assert.is_nil(sock)
      assert.are.equal("ECONNREFUSED", code)
    end)
  end)
end)

describe("garbage collection", function()
  it("closes a connected socket when every reference is dropped; the peer reads EOF", function()
    helper.run(function()
      local server, port, reports = draining_server()
      local weak = setmetatable({}, { __mode = "v" })
      local function open_and_forget()
        local sock, r, w = helper.connect(port)
        assert(w:write("last words"))
        weak.sock, weak.r, weak.w = sock, r, w
      end
      open_and_forget()
      assert.is_true(helper.eventually(function() return server:num_connections() == 1 end))
      full_gc()
      assert.is_nil(weak.sock)
      assert.is_nil(weak.r)
      assert.is_nil(weak.w)
      assert.is_true(helper.eventually(function() return #reports == 1 end))
      assert.are.equal("last words", reports[1].data)
      assert.are.equal("closed", reports[1].code)
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      helper.await(server:close())
    end)
  end)

  it("collects a socket whose reader and writer were never made", function()
    helper.run(function()
      local server, port, reports = draining_server()
      local weak = setmetatable({}, { __mode = "v" })
      ;(function() weak.sock = assert(tcp.connect_sock(helper.to(port))) end)()
      full_gc()
      assert.is_nil(weak.sock)
      assert.is_true(helper.eventually(function() return #reports == 1 end))
      assert.are.equal("", reports[1].data)
      assert.are.equal("closed", reports[1].code)
      helper.await(server:close())
    end)
  end)

  it("collects sockets already closed, and their reader/writer, without crashing", function()
    helper.run(function()
      local server, port, reports = draining_server()
      for i = 1, 5 do
        local sock, r, w = helper.connect(port)
        w:write("n" .. i)
        if i % 2 == 0 then sock:close() else sock:abort() end
        if i == 5 then r:close() w:close() end
        full_gc()
      end
      full_gc()
      assert.is_true(helper.eventually(function() return #reports == 5 end))
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      helper.await(server:close())
    end)
  end)

  it("does not collect a fiber waiting on a read, even with no reference to it", function()
    helper.run(function()
      local release = coronet.ivar()
      local result
      local server, port = helper.server(function(_, reader, writer)
        release.deferred:wait()
        writer:write("late\n")
        reader:read()
      end)
      local weak = setmetatable({}, { __mode = "v" })
      weak.fiber = coronet.spawn(function()
        -- only the reader stays on this fiber's stack; the socket lives through it
        local _, r = helper.connect(port)
        result = r:read_line()
        r:socket():close()
      end)
      assert.is_true(helper.eventually(function() return server:num_connections() == 1 end))
      coronet.sleep(t(0.02))
      full_gc()
      assert.is_nil(result)
      release:fill()
      assert.is_true(helper.eventually(function() return result ~= nil end))
      assert.are.equal("late", result)
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      helper.await(server:close())
    end)
  end)

  it("does not collect a fiber parked on a deferred that nothing references but the ivar", function()
    helper.run(function()
      local ivar = coronet.ivar()
      local result
      coronet.spawn(function() result = ivar.deferred:wait() end)
      coronet.sleep(t(0.01))
      full_gc()
      ivar:fill("filled")
      assert.is_true(helper.eventually(function() return result ~= nil end))
      assert.are.equal("filled", result)
    end)
  end)
end)

describe("descriptor leaks", function()
  it("returns to the starting descriptor count after 50 connections opened and closed", function()
    full_gc()
    local start = helper.open_fds()
    helper.run(function()
      local server, port = helper.server(function(_, reader, writer)
        local line = reader:read_line()
        if line then writer:write(line, "\n") end
      end)
      local socks = {}
      for i = 1, 50 do
        local sock, r, w = helper.connect(port)
        assert(w:write("c" .. i .. "\n"))
        assert.are.equal("c" .. i, r:read_line({ timeout = t(2) }))
        socks[i] = sock
      end
      -- all 50 client descriptors (and their server sides) are open at once
      assert.is_true(helper.open_fds() >= start + 50)
      for i = 1, 50 do socks[i]:close() end
      for i = 1, 50 do assert.is_true(socks[i]:close_finished(t(2))) end
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      assert.are.equal(50, server:stats().accepted)
      helper.await(server:close())
    end, 20)
    full_gc()
    -- No growth: a resolver descriptor from an earlier spec's detached DNS
    -- lookup may close meanwhile, so the count can only be checked from above.
    assert.is_true(helper.open_fds() <= start, "descriptors leaked")
    assert.are.equal(0, core.live())
  end)
end)

describe("objects outliving their run", function()
  it("closing and collecting a socket, reader, writer and server after run returned does not touch the old loop", function()
    local kept = {}
    helper.run(function()
      local server, port = helper.server(function(_, reader) reader:contents() end)
      kept.server = server
      kept.sock, kept.r, kept.w = helper.connect(port)
    end)
    assert.is_true(kept.sock:is_closed())
    assert.is_true(kept.server:is_closed())
    -- <close> and explicit closes after the run: no error, nothing reopened
    do
      local s <close> = kept.sock
      local r <close> = kept.r
      local w <close> = kept.w
    end
    kept.server:close()
    kept = nil
    full_gc()
    assert.are.equal(0, core.live())
    assert.are.equal(0, core.fiber_count())
    -- and a new run still works
    assert.are.equal("again", helper.run(function() return "again" end))
  end)
end)
