-- spec/guide_spec.lua: every ```lua block of docs/guide.md runs, so the
-- guide cannot rot. Each block is run on its own in a child `lua5.4` with
-- package.path and package.cpath set to this checkout, under a time limit:
-- a snippet that raises, blocks or crashes fails its own test, named by the
-- line where it starts. Snippets are self-contained (their own server on
-- port 0, a client that closes, a server:close()) and check what they
-- print with assert. Blocks fenced as ```c or ```sh are fragments and are
-- not run.
local helper = require "helper"

-- The checkout: this file is <root>/spec/guide_spec.lua.
local function checkout_root()
  local source = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = source:match("^(.*)/spec/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then dir = os.getenv("PWD") .. "/" .. dir end
  return (dir:gsub("/%.$", ""))
end

local ROOT = checkout_root()
local GUIDE = ROOT .. "/docs/guide.md"
-- Each snippet gets this many seconds (scaled under the sanitizers).
local LIMIT = helper.t(20)

--- The ```lua blocks of `text`: an array of {line = first code line, code = string}.
local function lua_blocks(text)
  local blocks, current, n = {}, nil, 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    if current then
      if line:match("^```%s*$") then
        blocks[#blocks + 1] = { line = current.line, code = table.concat(current.lines, "\n") .. "\n" }
        current = nil
      else
        current.lines[#current.lines + 1] = line
      end
    elseif line:match("^```lua%s*$") then
      current = { line = n + 1, lines = {} }
    end
  end
  assert(current == nil, "docs/guide.md: a ```lua block is not closed")
  return blocks
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- package.cpath as the child needs it: busted's relative entries made absolute.
local function absolute_cpath()
  local parts = {}
  for entry in package.cpath:gmatch("[^;]+") do
    if entry:sub(1, 1) ~= "/" then entry = ROOT .. "/" .. entry end
    parts[#parts + 1] = entry
  end
  return table.concat(parts, ";")
end

local PRELUDE = ("package.path = %q .. package.path; package.cpath = %q .. ';' .. package.cpath"):format(
  ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;", absolute_cpath())

--- Runs `code` in a child lua5.4 under `timeout`; returns ok, exit code, output.
-- The code is preceded by blank lines, so that the line numbers of its
-- errors and tracebacks are those of docs/guide.md.
local function run_snippet(code, first_line)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(("\n"):rep(first_line - 1), code)
  f:close()
  local command = ("cd %s && timeout -k 2 %d lua5.4 -e %s %s 2>&1"):format(
    shell_quote(os.getenv("TMPDIR") or "/tmp"), math.ceil(LIMIT), shell_quote(PRELUDE), shell_quote(path))
  local pipe = assert(io.popen(command, "r"))
  local output = pipe:read("a")
  local ok, _, status = pipe:close()
  os.remove(path)
  return ok == true, status, output
end

describe("guide: docs/guide.md", function()
  local text = read_file(GUIDE)
  local blocks = lua_blocks(text)

  it("has runnable snippets for every topic, in the brief's order", function()
    local topics = {
      "First server", "First client", "Reading protocols", "Errors", "Timeouts and cancellation",
      "Back-pressure", "Graceful shutdown", "Multi-core", "Embedding", "blocking interface",
      "Child processes", "Coming from",
    }
    local last = 0
    for _, topic in ipairs(topics) do
      local at = text:find("\n## [^\n]*" .. topic:gsub("%-", "%%-"))
      assert(at, "docs/guide.md has no section '## ... " .. topic .. "'")
      assert(at > last, "section '" .. topic .. "' is out of order")
      last = at
    end
    assert(#blocks >= 12, "expected at least 12 ```lua snippets, found " .. #blocks)
  end)

  -- The "Coming from" table's last column names coronet's calls: each must
  -- exist. The short names the table uses stand for these objects (a
  -- method is checked in the module that holds it: every method is also a
  -- function of its module).
  it("names only calls that exist in the table of equivalent calls", function()
    local coronet = require "coronet"
    local roots = {
      coronet = coronet, T = coronet.tcp, connection = coronet.connection,
      r = coronet.reader, w = coronet.writer, s = coronet.socket,
      server = coronet.tcp_server.Server, fiber = coronet, iv = coronet.deferred,
      conn = coronet.connection.sync.SyncConnection,
    }
    local section = assert(text:match("\n## Coming from.-\n(|.-)\n\n"), "no table under '## Coming from'")
    local checked = 0
    for row in section:gmatch("[^\n]+") do
      local last = row:match("|%s*([^|]*)%s*|%s*$")
      for span in last:gmatch("`([^`]+)`") do
        for prefix, name in span:gmatch("([%a_][%w_%.]*)[.:]([%a_][%w_]*)%(") do
          local object = roots[prefix:match("^[^.]+")]
          assert(object, ("the table names `%s` in `%s`: an unknown object"):format(prefix, span))
          for field in prefix:gmatch("%.([%w_]+)") do object = object[field] end
          local fn = object and object[name]
          assert(type(fn) == "function" or (type(fn) == "table" and getmetatable(fn) and getmetatable(fn).__call),
            ("the table names %s, method or field %s, in `%s`: it does not exist"):format(prefix, name, span))
          checked = checked + 1
        end
      end
    end
    assert(checked >= 30, "expected at least 30 coronet calls in the table, checked " .. checked)
  end)

  for _, block in ipairs(blocks) do
    it(("snippet at docs/guide.md:%d runs and ends by itself"):format(block.line), function()
      local ok, status, output = run_snippet(block.code, block.line)
      local killed = (status == 124 or status == 137) and (", killed at the time limit of %d s"):format(math.ceil(LIMIT))
      assert(ok, ("snippet at docs/guide.md:%d failed (exit %s%s; its line numbers are the guide's):\n%s"):format(
        block.line, tostring(status), killed or "", output))
    end)
  end
end)
