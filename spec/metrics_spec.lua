-- spec/metrics_spec.lua: coronet.metrics(), the loop-wide counters and
-- gauges, and examples/metrics_server.lua scraped by curl and checked by a
-- strict parser of the Prometheus text exposition format (0.0.4).
-- The counters are loop-wide and other specs share the process: every
-- check is a delta from a snapshot taken just before.
local coronet = require "coronet"
local helper = require "spec.helper"

local function delta(before, after)
  local d = {}
  for k, v in pairs(after) do d[k] = v - before[k] end
  return d
end

local function wait_for(field, value, base)
  return helper.eventually(function() return coronet.metrics()[field] - (base and base[field] or 0) == value end)
end

-- The Prometheus text format, version 0.0.4, strictly: only `# HELP`,
-- `# TYPE` and sample lines, every line ending in "\n", a TYPE (at most
-- one, before any of its samples) for every sample, counters named *_total.
-- Returns a table name -> { type =, help =, samples = { {labels =, value =} } },
-- or raises naming the line.
local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*"
local TYPES = { counter = true, gauge = true, histogram = true, summary = true, untyped = true }

local function parse_value(text)
  if text == "NaN" or text == "+Inf" or text == "-Inf" then return text end
  if not text:match("^[-+]?%d+%.?%d*[eE]?[-+]?%d*$") and not text:match("^[-+]?%.%d+$") then return nil end
  return tonumber(text)
end

-- `{a="x",b="y\"z"}` at position i of line: returns the labels and the position after `}`.
local function parse_labels(line, i)
  local labels = {}
  i = i + 1
  if line:sub(i, i) == "}" then return labels, i + 1 end
  while true do
    local name, after = line:match("^([a-zA-Z_][a-zA-Z0-9_]*)=\"()", i)
    assert(name, "bad label name")
    assert(labels[name] == nil, "label repeated: " .. name)
    local value, j = {}, after
    while true do
      local c = line:sub(j, j)
      assert(c ~= "", "unterminated label value")
      if c == "\"" then break end
      if c == "\\" then
        local e = line:sub(j + 1, j + 1)
        assert(e == "\\" or e == "\"" or e == "n", "bad escape in label value")
        c, j = e == "n" and "\n" or e, j + 1
      end
      value[#value + 1] = c
      j = j + 1
    end
    labels[name] = table.concat(value)
    j = j + 1
    local sep = line:sub(j, j)
    if sep == "}" then return labels, j + 1 end
    assert(sep == ",", "expected , or } after a label")
    i = j + 1
  end
end

local function parse_sample(families, line)
  local name = assert(line:match(NAME), "bad metric name")
  local family = assert(families[name], "sample before its TYPE line: " .. name)
  local i = #name + 1
  local labels = {}
  if line:sub(i, i) == "{" then labels, i = parse_labels(line, i) end
  local value_text, timestamp = line:sub(i):match("^ (%S+)(.*)$")
  assert(value_text, "expected one space and a value")
  assert(timestamp == "" or timestamp:match("^ %-?%d+$"), "bad timestamp")
  local value = assert(parse_value(value_text), "bad value")
  family.samples[#family.samples + 1] = { labels = labels, value = value }
end

local function parse_comment(families, line)
  local kind, name, rest = line:match("^# (%u+) (" .. NAME:sub(2) .. ")(.*)$")
  assert(kind == "HELP" or kind == "TYPE", "only # HELP and # TYPE comments")
  families[name] = families[name] or { samples = {} }
  local family = families[name]
  if kind == "HELP" then
    assert(family.help == nil, "HELP repeated")
    assert(rest == "" or rest:match("^ "), "HELP needs a space before its text")
    assert(not rest:gsub("\\[\\n]", ""):find("\\", 1, true), "bad escape in HELP")
    family.help = rest:sub(2)
  else
    local type_name = rest:match("^ (%l+)$")
    assert(TYPES[type_name], "bad TYPE")
    assert(family.type == nil and #family.samples == 0, "TYPE repeated or after a sample")
    assert(type_name ~= "counter" or name:match("_total$"), "a counter not named *_total")
    family.type = type_name
  end
end

local function parse_exposition(text)
  assert(text:sub(-1) == "\n", "the last line does not end in a newline")
  local families, n = {}, 0
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    local ok, err = pcall(line:sub(1, 1) == "#" and parse_comment or parse_sample, families, line)
    if not ok then error(("line %d %q: %s"):format(n, line, tostring(err):gsub("^.-:%d+: ", "")), 2) end
  end
  return families
end

-- The value of the one sample of family `name` whose labels are `labels`.
local function value_of(families, name, labels)
  local family = assert(families[name], "no family " .. name)
  for _, s in ipairs(family.samples) do
    local same = true
    for k, v in pairs(labels or {}) do same = same and s.labels[k] == v end
    for k in pairs(s.labels) do same = same and (labels or {})[k] ~= nil end
    if same then return s.value end
  end
  error("no sample of " .. name)
end

describe("coronet.metrics", function()
  it("returns a fresh table of every field, each a number", function()
    helper.run(function()
      local m = coronet.metrics()
      for _, field in ipairs { "connections_open", "accepted", "refused", "dropped", "accept_errors", "bytes_in",
        "bytes_out", "fibers_alive", "timers_pending", "loop_lag", "dns_in_flight" } do
        assert.is_number(m[field], field)
        assert.is_true(m[field] >= 0, field)
      end
      assert.is_true(math.type(m.accepted) == "integer" and math.type(m.bytes_in) == "integer")
      assert.is_number(m.loop_lag)
      m.accepted = -1
      assert.is_true(coronet.metrics().accepted >= 0)
      assert.are_not.equal(m, coronet.metrics())
    end)
  end)

  it("counts three clients, the bytes both ways and their close, closed streams included", function()
    helper.run(function()
      local n = 1000
      local before = coronet.metrics()
      local server, port = helper.server(helper.echo)
      local line = ("x"):rep(n - 1) .. "\n"
      local clients = {}
      for i = 1, 3 do
        local sock, r, w = helper.connect(port)
        assert(w:write(line))
        assert.are.equal(line:sub(1, -2), r:read_line())
        clients[i] = sock
      end
      assert.is_true(wait_for("accepted", 3, before))
      local open = delta(before, coronet.metrics())
      assert.are.equal(6, open.connections_open) -- three clients and their server sides
      for _, sock in ipairs(clients) do
        sock:close()
        sock:close_finished()
      end
      assert.is_true(helper.eventually(function() return server:num_connections() == 0 end))
      server:close():wait()
      local d = delta(before, coronet.metrics())
      assert.are.equal(0, d.connections_open)
      assert.are.equal(3, d.accepted)
      assert.are.equal(0, d.refused)
      assert.are.equal(0, d.dropped)
      assert.are.equal(0, d.accept_errors)
      assert.are.equal(6 * n, d.bytes_in) -- each line read by the server and read back by its client
      assert.are.equal(6 * n, d.bytes_out)
    end)
  end)

  it("counts a client left waiting at max_connections as refused, one in drop mode as dropped", function()
    helper.run(function()
      local before = coronet.metrics()
      local hold = coronet.ivar()
      local server, port = helper.server(function() hold.deferred:wait() end, { max_connections = 1 })
      -- Both connects are made before the loop polls: the server finds both waiting.
      local a = coronet.spawn(helper.connect, port)
      local b = coronet.spawn(helper.connect, port)
      local sock_a = assert(a:join())
      local sock_b = assert(b:join())
      assert.is_true(wait_for("refused", 1, before))
      assert.are.equal(1, delta(before, coronet.metrics()).accepted)
      hold:fill() -- the first handler returns: room for the second client
      assert.is_true(wait_for("accepted", 2, before))
      assert.are.equal(1, delta(before, coronet.metrics()).refused)
      assert.are.equal(0, delta(before, coronet.metrics()).dropped)
      server:set_drop_incoming_connections(true)
      local sock_c = helper.connect(port)
      assert.is_true(wait_for("dropped", 1, before))
      assert.are.equal(3, delta(before, coronet.metrics()).accepted)
      for _, sock in ipairs { sock_a, sock_b, sock_c } do sock:close() end
      server:close({ close_existing_connections = true }):wait()
      assert.are.equal(1, delta(before, coronet.metrics()).refused)
    end)
  end)

  it("counts a threadpool lookup in flight until it is done", function()
    helper.run(function()
      local before = coronet.metrics()
      local lookup = coronet.spawn(coronet.net.getaddrinfo, "localhost")
      -- Runs after the lookup started and before the loop polls for its result.
      local during = coronet.spawn(function() return coronet.metrics().dns_in_flight end)
      assert.are.equal(before.dns_in_flight + 1, assert(during:join()))
      assert(lookup:join())
      assert.are.equal(before.dns_in_flight, coronet.metrics().dns_in_flight)
    end)
  end)

  it("counts live fibers and pending timers", function()
    helper.run(function()
      coronet.sleep(0.001) -- helper.run's watchdog is asleep: its timer counts in `before`
      local before = coronet.metrics()
      local sleepers = {}
      for i = 1, 3 do sleepers[i] = coronet.spawn(coronet.sleep, 10) end
      coronet.sleep(0.01) -- they start sleeping
      local d = delta(before, coronet.metrics())
      assert.are.equal(3, d.fibers_alive)
      assert.are.equal(3, d.timers_pending)
      for _, f in ipairs(sleepers) do f:cancel() end
      for _, f in ipairs(sleepers) do f:join() end
      d = delta(before, coronet.metrics())
      assert.are.equal(0, d.fibers_alive)
      assert.are.equal(0, d.timers_pending)
    end)
  end)

  it("reports how late timers fired: loop_lag grows when a fiber blocks the loop", function()
    helper.run(function()
      -- The lag is the largest of the last one to two seconds: two quiet
      -- seconds forget the lag that earlier specs' CPU work left.
      coronet.sleep(2.1)
      local idle_lag = coronet.metrics().loop_lag
      assert.is_true(idle_lag < 0.03, "idle lag " .. idle_lag)
      -- Under the GC-stress build a turn can outlast the timer's 10 ms, so it
      -- may fire before the work starts: then the case is tried again.
      local lag
      for _ = 1, 10 do
        local timer = coronet.spawn(coronet.sleep, 0.01)
        coronet.sleep(0.001) -- the timer fiber is asleep now, due 10 ms from its start
        local pending = not timer:is_done()
        local start = os.clock()
        while os.clock() - start < 0.06 do end -- CPU work in this fiber: the loop cannot turn
        timer:join()
        lag = coronet.metrics().loop_lag
        if pending then break end
      end
      assert.is_true(lag >= 0.04, "lag " .. lag) -- due 10 ms in, fired after 60 ms of work
      assert.is_true(lag < 5, "lag " .. lag)
      assert.is_true(lag > idle_lag, ("lag %g, idle %g"):format(lag, idle_lag))
    end)
  end)
end)

describe("the exposition parser of this spec", function()
  it("accepts valid lines", function()
    local families = parse_exposition(table.concat({
      "# HELP a_total Things, with \\\\ and \\n.",
      "# TYPE a_total counter",
      "a_total 3",
      "# TYPE b gauge",
      "b{x=\"1\",y=\"q\\\"\\\\\\n\"} -1.5e3",
      "b{} NaN",
      "b +Inf 1700000000000",
      "",
    }, "\n"))
    assert.are.equal(3, value_of(families, "a_total"))
    assert.are.equal(-1500, value_of(families, "b", { x = "1", y = "q\"\\\n" }))
    assert.are.equal("counter", families.a_total.type)
  end)

  it("rejects every malformed line", function()
    local bad = {
      "a_total 3\n",                                  -- no TYPE before the sample
      "# TYPE a counter\na 1\n",                      -- a counter not named _total
      "# TYPE a gauge\na 1",                          -- no final newline
      "# TYPE a gauge\n\na 1\n",                      -- an empty line
      "# TYPE a gauge\n# just a comment\n",           -- another comment
      "# TYPE a gauges\n",                            -- unknown type
      "# TYPE a gauge\n# TYPE a gauge\n",             -- TYPE repeated
      "# TYPE a gauge\na 1\n# TYPE a gauge\n",        -- TYPE after a sample
      "# TYPE a gauge\na  1\n",                       -- two spaces
      "# TYPE a gauge\na 1x\n",                       -- not a number
      "# TYPE a gauge\na{x=1} 1\n",                   -- unquoted label value
      "# TYPE a gauge\na{x=\"1\" 1\n",                -- unclosed labels
      "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",       -- label repeated
      "# TYPE a gauge\na{x=\"\\t\"} 1\n",             -- bad escape
      "# TYPE a gauge\n1a 1\n",                       -- bad name
      "# TYPE a gauge\na 1 now\n",                    -- bad timestamp
      "# TYPE a-b gauge\n",                           -- bad name in TYPE
      "# HELP a x\\t\n",                              -- bad escape in HELP
      "# HELP a x\n# HELP a y\n",                     -- HELP repeated
    }
    for _, text in ipairs(bad) do
      assert.has_error(function() parse_exposition(text) end, nil, text)
    end
  end)
end)

describe("examples/metrics_server.lua", function()
  local function shell(cmd)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    local ok, _, status = p:close()
    return out, ok, status
  end

  local function scrape(port)
    -- Without the sanitizer runtime the sanitized runs preload: curl hangs under it.
    local body, ok, status = shell(("env -u LD_PRELOAD curl -sS --fail --max-time 5 http://127.0.0.1:%d/metrics")
      :format(port))
    assert(ok, "curl failed with " .. tostring(status))
    return parse_exposition(body)
  end

  it("serves coronet.metrics() and the echo server's stats() to curl in the exposition format", function()
    local out = assert(io.popen("sh -c 'echo $$; exec lua5.4 examples/metrics_server.lua 0 0' 2>&1"))
    local pid = assert(tonumber(out:read("l")))
    local metrics_port = tonumber(assert(out:read("l")):match("^metrics on port (%d+)$"))
    local echo_port = tonumber(assert(out:read("l")):match("^echo on port (%d+)$"))
    local ok, err = pcall(function()
      assert(metrics_port and echo_port, "the example did not print its ports")
      local first = scrape(metrics_port)
      assert.are.equal("counter", first.coronet_accepted_total.type)
      assert.are.equal("gauge", first.coronet_connections_open.type)
      assert.are.equal("gauge", first.coronet_loop_lag_seconds.type)
      assert.are.equal(1, value_of(first, "coronet_accepted_total")) -- this scrape's own connection
      assert.are.equal(1, value_of(first, "coronet_connections_open"))
      assert.are.equal(0, value_of(first, "coronet_server_accepted_total", { server = "echo" }))
      local n = 777
      helper.run(function()
        for _ = 1, 2 do
          local sock, r, w = helper.connect(echo_port)
          assert(w:write(("y"):rep(n - 1), "\n"))
          assert(r:read_line())
          sock:close()
          sock:close_finished()
        end
      end)
      local m
      for _ = 1, 200 do -- until the example has closed its side of both
        m = scrape(metrics_port)
        if value_of(m, "coronet_server_connections", { server = "echo" }) == 0 then break end
        os.execute("sleep 0.01")
      end
      assert.are.equal(0, value_of(m, "coronet_server_connections", { server = "echo" }))
      assert.are.equal(2, value_of(m, "coronet_server_accepted_total", { server = "echo" }))
      assert.are.equal(2 * n, value_of(m, "coronet_server_received_bytes_total", { server = "echo" }))
      assert.are.equal(2 * n, value_of(m, "coronet_server_sent_bytes_total", { server = "echo" }))
      assert.is_true(value_of(m, "coronet_received_bytes_total") >= 2 * n)
      assert.is_true(value_of(m, "coronet_sent_bytes_total") >= 2 * n)
      assert.is_true(value_of(m, "coronet_accepted_total") >= 4) -- two echo clients, two scrapes at least
      assert.are.equal(1, value_of(m, "coronet_connections_open"))
      assert.are.equal(0, value_of(m, "coronet_refused_total"))
      assert.is_true(value_of(m, "coronet_fibers_alive") >= 1)
    end)
    os.execute("kill -TERM " .. pid)
    local rest = out:read("a")
    local exited = { out:close() }
    assert(ok, err)
    assert.is_true(exited[1], "the example did not stop cleanly on SIGTERM: " .. rest)
  end)
end)
