-- spec/tls_fixture.lua: what the TLS specs share: certificates made for the
-- run by spec/tls/make_certs.sh (a spec file calls `setup(certs.make)` and
-- `teardown(certs.remove)`: busted's setup is the spec file's own), client
-- and server options over them, and openssl started quietly.
local coronet = require "coronet"
local helper = require "helper"
local process = require "coronet.process"

local M = {}

--- Copies extra's fields into base; returns base.
function M.with(base, extra)
  for k, v in pairs(extra or {}) do base[k] = v end
  return base
end

--- Certificates for one spec file, in a directory of their own: a table
-- with `make()` and `remove()` (for busted's setup and teardown),
-- `cert(name)` (a file's path), `server_tls(extra)` and `client_tls(extra)`
-- (options using the server certificate and the test CA).
function M.certificates(name)
  local dir = ("%s/coronet-%s-%d"):format(os.getenv("TMPDIR") or "/tmp", name, helper.pid())
  local f = {}
  function f.make() assert(os.execute("env -u LD_PRELOAD bash spec/tls/make_certs.sh " .. dir)) end
  function f.remove() os.execute("rm -rf " .. dir) end
  function f.cert(file) return dir .. "/" .. file end
  function f.server_tls(extra) return M.with({ cert_file = f.cert("server.pem"), key_file = f.cert("server.key") }, extra) end
  function f.client_tls(extra) return M.with({ ca_file = f.cert("ca.pem") }, extra) end
  return f
end

--- Where_to_connect for localhost:port (the name the certificate holds).
function M.to_localhost(port) return coronet.tcp.Where_to_connect.of_host_and_port("localhost", port) end

--- Starts a shell command line with its stderr dropped (openssl's chatter),
-- outside the sanitizers' preload (which would fail the tools' own exits).
function M.quiet_spawn(command)
  return process.spawn("sh", { "-c", "exec env -u LD_PRELOAD " .. command .. " 2>/dev/null" })
end

return M
