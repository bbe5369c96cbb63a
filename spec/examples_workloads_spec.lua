-- spec/examples_workloads_spec.lua: the workload examples against real
-- clients no one here wrote: examples/http_hello.lua under curl,
-- examples/redis_lite.lua under redis-cli and redis-benchmark, and
-- examples/proxy.lua in front of http_hello (curl), nginx (a 64 MiB download
-- by curl) and an echo server (a 64 MiB round trip), checked by sha256.
-- The examples and nginx run as child processes on free ports.
local coronet = require "coronet"
local helper = require "helper"

local t = helper.t
local root = io.popen("pwd"):read("l")
local MiB = 1024 * 1024

-- The real clients and nginx run without the ASan runtime the sanitizer
-- build preloads into lua5.4 (curl aborts with it).
local NATIVE = "unset LD_PRELOAD; "

-- Runs a shell command to its end (the servers are other processes, so
-- blocking this loop meanwhile is harmless); returns its output and whether
-- it exited with 0.
local function sh(cmd)
  local p = assert(io.popen(NATIVE .. cmd))
  local out = p:read("a")
  local ok = p:close()
  return out, ok == true
end

-- Waits until the log file names the port the child listens on.
local function port_in_log(log, what)
  local port
  local deadline = coronet.now() + t(5)
  while not port and coronet.now() < deadline do
    local f = io.open(log)
    port = f and tonumber((f:read("a") or ""):match("listening on port (%d+)"))
    if f then f:close() end
    if not port then coronet.sleep(t(0.02)) end
  end
  assert(port, what .. " did not report its port")
  return port
end

-- Starts examples/<name> with args from another directory; returns a
-- handle with its port and stop().
local function start_example(name, args)
  local log = os.tmpname()
  local p = assert(io.popen(("cd / && { lua5.4 %s/examples/%s %s 2>%s & echo $!; }"):format(root, name, args, log)))
  local pid = assert(tonumber(p:read("l")))
  p:close()
  local ex = { pid = pid, port = port_in_log(log, name) }
  function ex.stop()
    assert.is_true(os.execute("kill -TERM " .. pid))
    assert(helper.eventually(function() return not os.execute("kill -0 " .. pid .. " 2>/dev/null") end, 5),
      name .. " did not exit on SIGTERM")
    os.remove(log)
  end
  return ex
end

-- A file of n random bytes; returns its path.
local function random_file(n)
  local path = os.tmpname()
  assert(sh(("head -c %d /dev/urandom > %s && echo ok"):format(n, path)) == "ok\n")
  return path
end

local function sha256(path) return (sh("sha256sum " .. path):match("^(%x+)")) end

-- Sends `request` on a new connection to port and returns everything the
-- server sends until it closes (nil if that takes over 5 s or 64 KiB).
local function exchange(port, request, opts)
  local sock, r, w = helper.connect(port, opts)
  assert(w:write(request))
  local got = r:contents({ timeout = t(5) })
  sock:close()
  return got
end

describe("examples/http_hello.lua under curl", function()
  local function url(ex, path) return ("http://127.0.0.1:%d%s"):format(ex.port, path or "/") end

  it("answers two URLs on one keep-alive connection (curl reuses it)", function()
    helper.run(function()
      local ex = start_example("http_hello.lua", "0")
      local out = sh(("curl -sv %s %s 2>&1"):format(url(ex, "/a"), url(ex, "/b")))
      assert.matches("Re%-using existing connection", out)
      local _, bodies = out:gsub("Hello, World!", "")
      assert.equal(2, bodies)
      assert.not_matches("< Connection: close", out)
      ex.stop()
    end, 30)
  end)

  it("reads and drops a POST body, then serves the next request on the same connection", function()
    helper.run(function()
      local ex = start_example("http_hello.lua", "0")
      local body = random_file(300 * 1024)
      local out, ok = sh(("curl -sv --data-binary @%s %s %s 2>&1"):format(body, url(ex), url(ex)))
      os.remove(body)
      assert.is_true(ok, out)
      assert.matches("Re%-using existing connection", out)
      local _, answers = out:gsub("< HTTP/1%.1 200 OK", "")
      assert.equal(2, answers, out)
      ex.stop()
    end, 30)
  end)

  it("closes after an HTTP/1.0 request unless it asks for keep-alive", function()
    helper.run(function()
      local ex = start_example("http_hello.lua", "0")
      local out = sh(("curl -0 -sv %s %s 2>&1"):format(url(ex), url(ex)))
      assert.not_matches("Re%-using existing connection", out)
      assert.matches("< Connection: close", out)
      assert.matches("Hello, World!", out)
      local kept = sh(("curl -0 -sv -H 'Connection: keep-alive' %s %s 2>&1"):format(url(ex), url(ex)))
      assert.matches("Re%-using existing connection", kept)
      assert.matches("< Connection: keep%-alive", kept)
      ex.stop()
    end, 30)
  end)

  it("closes after Connection: close", function()
    helper.run(function()
      local ex = start_example("http_hello.lua", "0")
      local got = exchange(ex.port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n")
      assert.matches("^HTTP/1%.1 200 OK\r\n.-Connection: close\r\n\r\nHello, World!$", got)
      ex.stop()
    end, 30)
  end)

  it("answers HEAD with the headers alone (curl -I, and a pipelined GET after it)", function()
    helper.run(function()
      local ex = start_example("http_hello.lua", "0")
      local out, ok = sh(("curl -sI %s"):format(url(ex)))
      assert.is_true(ok)
      assert.matches("^HTTP/1%.1 200 OK\r\n", out)
      assert.matches("Content%-Length: 13\r\n", out)
      assert.not_matches("Hello", out)
      local got = exchange(ex.port, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.matches("^HTTP/1%.1 200 OK\r\n.-\r\n\r\nHTTP/1%.1 200 OK\r\n.-\r\n\r\nHello, World!$", got)
      local _, bodies = got:gsub("Hello", "")
      assert.equal(1, bodies)
      ex.stop()
    end, 30)
  end)

  it("answers 400 and closes on junk, on a bad Content-Length and on a head past the cap", function()
    helper.run(function()
      local ex = start_example("http_hello.lua", "0")
      assert.matches("^HTTP/1%.1 400 Bad Request\r\n.-Connection: close\r\n", exchange(ex.port, "GARBAGE\r\n\r\n"))
      assert.matches("^HTTP/1%.1 400 ",
        exchange(ex.port, "GET / HTTP/1.1\r\nContent-Length: lots\r\n\r\n"))
      assert.matches("^HTTP/1%.1 400 ", exchange(ex.port, "GET / HTTP/1.1\r\nX: " .. ("a"):rep(70 * 1024)))
      -- nothing was answered twice, and the server still serves
      assert.matches("Hello, World!$", exchange(ex.port, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"))
      ex.stop()
    end, 30)
  end)
end)

describe("examples/redis_lite.lua under redis-cli and redis-benchmark", function()
  local function cli(ex, args, stdin)
    return sh(("redis-cli -p %d %s%s 2>&1"):format(ex.port, args, stdin and (" < " .. stdin) or ""))
  end

  it("sets, gets, deletes and pings", function()
    helper.run(function()
      local ex = start_example("redis_lite.lua", "0")
      assert.equal("PONG\n", cli(ex, "ping"))
      assert.equal("OK\n", cli(ex, "set greeting hello"))
      assert.equal("hello\n", cli(ex, "get greeting"))
      assert.equal("1\n", cli(ex, "del greeting"))
      assert.equal("0\n", cli(ex, "del greeting"))
      assert.equal("\n", cli(ex, "get greeting")) -- nil: redis-cli prints an empty line without a tty
      assert.matches("ERR unknown command", (cli(ex, "frobnicate")))
      ex.stop()
    end, 30)
  end)

  it("keeps a binary value with CRLF and NUL bytes (redis-cli -x set)", function()
    helper.run(function()
      local ex = start_example("redis_lite.lua", "0")
      local path = os.tmpname()
      local value = "line one\r\nline two\r\n\0*3\r\n$1\r\nx" .. ("\255"):rep(1000)
      local f = assert(io.open(path, "wb"))
      f:write(value)
      f:close()
      assert.equal("OK\n", cli(ex, "-x set blob", path))
      os.remove(path)
      -- read back raw, with a client of our own: redis-cli adds a newline
      local got = exchange(ex.port, "*2\r\n$3\r\nGET\r\n$4\r\nblob\r\nQUIT\r\n")
      assert.equal(("$%d\r\n%s\r\n+OK\r\n"):format(#value, value), got)
      ex.stop()
    end, 30)
  end)

  it("answers a pipelined batch in order (redis-cli --pipe, and RESP mixed with inline commands)", function()
    helper.run(function()
      local ex = start_example("redis_lite.lua", "0")
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      for i = 1, 500 do f:write(("SET key%d value%d\r\n"):format(i, i)) end
      f:write("GET key500\r\n")
      f:close()
      local out, ok = cli(ex, "--pipe", path)
      os.remove(path)
      assert.is_true(ok, out)
      assert.matches("errors: 0, replies: 501", out)
      local batch = { "PING\r\n" }
      for i = 1, 200 do batch[#batch + 1] = ("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%d\r\n"):format(#tostring(i), i) end
      batch[#batch + 1] = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\nECHO done\r\nQUIT\r\n"
      local got = exchange(ex.port, table.concat(batch))
      assert.equal("+PONG\r\n" .. ("+OK\r\n"):rep(200) .. "$3\r\n200\r\n$4\r\ndone\r\n+OK\r\n", got)
      ex.stop()
    end, 30)
  end)

  it("runs redis-benchmark -P 16 to the end without errors", function()
    helper.run(function()
      local ex = start_example("redis_lite.lua", "0")
      local out, ok = sh(("redis-benchmark -p %d -q -n 2000 -t ping,set,get -P 16 2>&1"):format(ex.port))
      assert.is_true(ok, out)
      out = out:gsub("\r", "\n")
      for _, test in ipairs({ "PING_INLINE", "PING_MBULK", "SET", "GET" }) do
        assert.matches("\n" .. test .. ": [%d.]+ requests per second", out)
      end
      assert.not_matches("ERR", out)
      assert.not_matches("[Ee]rror", out)
      assert.not_matches("WARN", out)
      assert.equal("PONG\n", cli(ex, "ping")) -- still serving
      ex.stop()
    end, 60)
  end)
end)

describe("examples/proxy.lua", function()
  it("carries curl's keep-alive requests and a POST body to http_hello", function()
    helper.run(function()
      local http = start_example("http_hello.lua", "0")
      local proxy = start_example("proxy.lua", "0 127.0.0.1 " .. http.port)
      local via = ("http://127.0.0.1:%d/"):format(proxy.port)
      local out = sh(("curl -sv %s %s 2>&1"):format(via, via))
      assert.matches("Re%-using existing connection", out)
      local _, bodies = out:gsub("Hello, World!", "")
      assert.equal(2, bodies)
      local body = random_file(MiB)
      local posted, ok = sh(("curl -s --data-binary @%s %s"):format(body, via))
      os.remove(body)
      assert.is_true(ok)
      assert.equal("Hello, World!", posted)
      proxy.stop()
      http.stop()
    end, 30)
  end)

  it("passes a 64 MiB download from nginx to curl intact (sha256)", function()
    helper.run(function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(sh(("mkdir -p %s/www && echo ok"):format(dir)) == "ok\n")
      local big = random_file(64 * MiB)
      assert(os.rename(big, dir .. "/www/big"))
      local port = helper.closed_port()
      local text = ([[
daemon off;
master_process off;
worker_processes 1;
error_log DIR/error.log;
pid DIR/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path DIR/body;
  proxy_temp_path DIR/proxy;
  fastcgi_temp_path DIR/fastcgi;
  uwsgi_temp_path DIR/uwsgi;
  scgi_temp_path DIR/scgi;
  server { listen 127.0.0.1:PORT; root DIR/www; }
}
]]):gsub("DIR", dir):gsub("PORT", tostring(port))
      local conf = assert(io.open(dir .. "/nginx.conf", "w"))
      conf:write(text)
      conf:close()
      local start = NATIVE .. "{ nginx -e %s/error.log -p %s -c %s/nginx.conf & echo $!; }"
      local p = assert(io.popen(start:format(dir, dir, dir)))
      local nginx_pid = assert(tonumber(p:read("l")))
      p:close()
      assert(helper.eventually(function()
        local s = coronet.tcp.connect(helper.to(port), { timeout = t(1) })
        if s then s:close() end
        return s ~= nil
      end, 5), "nginx did not start")
      local proxy = start_example("proxy.lua", "0 127.0.0.1 " .. port)
      local out_path = dir .. "/out"
      local out, ok = sh(("curl -sS -o %s http://127.0.0.1:%d/big 2>&1"):format(out_path, proxy.port))
      assert.is_true(ok, out)
      assert.equal(sha256(dir .. "/www/big"), sha256(out_path))
      proxy.stop()
      os.execute("kill -TERM " .. nginx_pid)
      assert(helper.eventually(function() return not os.execute("kill -0 " .. nginx_pid .. " 2>/dev/null") end, 5))
      os.execute("rm -rf " .. dir)
    end, 120)
  end)

  it("carries 64 MiB each way to an echo server and passes the half-close both ways (sha256)", function()
    helper.run(function()
      -- the target: a plain echo that returns when its reader sees EOF,
      -- which then closes its side
      local echo_eof = coronet.ivar()
      local server, port = helper.server(function(_, r, w)
        while true do
          local data = r:read()
          if not data then break end
          assert(w:write(data))
        end
        echo_eof:fill(true)
      end)
      local proxy = start_example("proxy.lua", "0 127.0.0.1 " .. port)
      local input = random_file(64 * MiB)
      local output = os.tmpname()
      local sock, r, w = helper.connect(proxy.port)
      local received = coronet.ivar()
      coronet.spawn(function()
        local f = assert(io.open(output, "wb"))
        while true do
          local data, _, code = r:read({ timeout = t(30) })
          if not data then
            received:fill(code)
            break
          end
          f:write(data)
        end
        f:close()
      end)
      local f = assert(io.open(input, "rb"))
      while true do
        local chunk = f:read(MiB)
        if not chunk then break end
        assert(w:write(chunk))
      end
      f:close()
      w:close() -- the half-close: the echo must see EOF, and its close must come back
      helper.await(echo_eof.deferred, 60)
      helper.await(received.deferred, 60)
      assert.equal("closed", received.deferred:peek()) -- a clean EOF, not a reset
      assert.equal(sha256(input), sha256(output))
      os.remove(input)
      os.remove(output)
      sock:close()
      proxy.stop()
      helper.await(server:close())
    end, 180)
  end)
end)
