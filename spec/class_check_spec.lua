-- The class check every binding method starts with: a box's class is the tag
-- C wrote at its start, so a userdata that merely carries our metatable (set
-- with debug.setmetatable) is refused, not read as one of our boxes.
local h = require "spec.helper"

-- Runs `script` in a child lua5.4 with this build's module on its paths
-- (a regression crashes the child, not busted); returns its output.
local function child(script)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(("package.path = %q; package.cpath = %q\n"):format(package.path, package.cpath), script)
  f:close()
  local p = assert(io.popen("lua5.4 " .. file .. " 2>&1"))
  local out = p:read("a")
  p:close()
  os.remove(file)
  return out
end

describe("the class check", function()
  it("refuses a foreign userdata dressed in a class's metatable, for every method of every class", function()
    local out = child([[
      require "coronet.core"
      local registry = debug.getregistry()
      local classes = {"reader", "writer", "socket", "server", "fiber", "connect", "datagram_socket", "process", "address"}
      local file = io.tmpfile()
      local file_mt = getmetatable(file)
      local calls, refused = 0, 0
      for _, class in ipairs(classes) do
        local mt = assert(registry["coronet." .. class], class)
        local methods = type(mt.__index) == "table" and mt.__index or {tostring = mt.__tostring}
        for name, fn in pairs(methods) do
          debug.setmetatable(file, mt)
          local ok, err = pcall(fn, file)
          debug.setmetatable(file, file_mt)
          calls = calls + 1
          if not ok then refused = refused + 1 else print("accepted: " .. class .. ":" .. name) end
          if class == "reader" and name == "buffered" then print(err) end
        end
      end
      file:close()
      print(("refused %d of %d"):format(refused, calls))
    ]])
    local refused, calls = out:match("refused (%d+) of (%d+)")
    assert.is_truthy(calls, out)
    assert.are.equal(calls, refused, out)
    assert.is_true(tonumber(calls) > 50, out)
    assert.is_truthy(out:find("bad argument #1 to '?' (coronet.reader expected", 1, true), out)
  end)

  it("tells a reader from a writer though both are the same struct", function()
    h.run(function()
      local server, port = h.server(h.echo)
      local _, r, w = h.connect(h.to(port))
      local ok, err = pcall(r.buffered, w)
      assert.is_false(ok)
      assert.matches("bad argument #1 to '[%w.]*buffered' %(coronet.reader expected, got coronet.writer%)", err)
      ok, err = pcall(w.pending, r)
      assert.is_false(ok)
      assert.matches("coronet.writer expected, got coronet.reader", err)
      r:close(); w:close()
      server:close()
    end)
  end)
end)
