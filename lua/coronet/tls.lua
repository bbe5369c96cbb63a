--- TLS (OpenSSL) for coronet's sockets: the `tls` option of `tcp.connect`,
-- `tcp.with_connection` and `tcp.Server.create`, and `socket:starttls`,
-- `socket:tls_info`. Encryption runs in the stream's transport, under the
-- same reader and writer: reads, writes, timeouts and back-pressure work
-- as on a plain socket.
--
-- Client options: `server_name` (sent as SNI and checked against the
-- server's certificate; `tcp.connect` defaults it to the host connected
-- to), `verify` (true by default: the certificate chain against the
-- system's CA store, or `ca_file`/`ca_path`, and the name; `false` turns
-- both off), `ca_file`, `ca_path`, `alpn` (protocol names, most preferred
-- first), `cert_file` and `key_file` (a client certificate), `session`
-- (from an earlier connection's `tls_info().session`, to resume it),
-- `handshake_timeout` (seconds, default 10).
--
-- Server options: `cert_file` and `key_file` (required; checked to match
-- when the server is made), `alpn` (the server picks the first of its names
-- the client offers; a client offering none of them fails the handshake),
-- `client_ca_file` (request a client certificate and require one these
-- CAs verify), `handshake_timeout` (seconds, default 10).
--
-- Errors are `nil, err, code` with `err.kind == "tls"`: `tls_handshake`,
-- `tls_verify` (the message ends with OpenSSL's reason, e.g. "certificate
-- has expired", "hostname mismatch"), `tls_truncated` (a read: the peer
-- closed without close_notify), `tls_protocol` (a bad record after the
-- handshake), `tls_config` (a file missing or unreadable, a key that does
-- not match its certificate, naming the file). A read or write that fails
-- with one of these has OpenSSL's reason at the end of its message too
-- ("... (tls_protocol): bad record mac"). A reset by the peer reads as
-- `ECONNRESET`, even in the middle of a record.
--
-- A handshake that does not succeed (any of these errors, `timeout`,
-- `cancelled`) closes the socket: TLS's state is then unknown to both ends,
-- so every later read and write on it returns `nil, err, "closed"` (an
-- alert OpenSSL queued still goes out first). Only `tls_config` from
-- options refused before the handshake started (a bad `session`) leaves a
-- plain socket as it was.
-- @module coronet.tls
local core = require "coronet.core"
local errors = require "coronet.errors"

local M = {}

local DEFAULT_HANDSHAKE_TIMEOUT = 10

local known = {
  client = { server_name = "string", verify = "boolean", ca_file = "string", ca_path = "string", alpn = "table",
             cert_file = "string", key_file = "string", session = "string", handshake_timeout = "number",
             server = "boolean", context = "userdata" },
  server = { cert_file = "string", key_file = "string", alpn = "table", client_ca_file = "string",
             handshake_timeout = "number", server = "boolean", context = "userdata" },
}

-- Raises naming `fn` on an option of the wrong side or type (a typo would
-- otherwise turn verification-related settings off silently).
local function check(opts, side, fn)
  if type(opts) ~= "table" then error(("%s: option 'tls' must be a table"):format(fn), 3) end
  for key, value in pairs(opts) do
    local want = known[side][key]
    if not want then error(("%s: unknown %s TLS option '%s'"):format(fn, side, tostring(key)), 3) end
    if type(value) ~= want then
      error(("%s: TLS option '%s' must be a %s (got %s)"):format(fn, key, want, type(value)), 3)
    end
  end
end

--- A TLS context: one `SSL_CTX`, made once and shared by every connection
-- that uses it (a server makes one). `context` in the options of the
-- functions below reuses one.
-- @tparam table opts the client or server options
-- @tparam[opt="client"] string side "client" or "server"
-- @return a context, or `nil, err, "tls_config"`
function M.context(opts, side)
  if type(opts) ~= "table" then errors._typeerror(1, "tls.context", "table", opts) end
  side = side or "client"
  if not known[side] then
    errors._argerror(2, "tls.context", ('side must be "client" or "server" (got %s)'):format(errors._typename(side)))
  end
  check(opts, side, "tls.context")
  return core.tls_context(opts, side == "server")
end

local function handshake_timeout(opts)
  local t = opts.handshake_timeout
  if t == nil then return DEFAULT_HANDSHAKE_TIMEOUT end
  return t
end

--- `socket:starttls(opts)` (documented in coronet.socket): the handshake
-- on a connected socket, as the client or (`opts.server`) the server.
-- Misuse raises: bad options, a verifying client without `server_name`, a
-- socket that has TLS already (its own handshake still running included).
-- `busy` while the writer holds unflushed bytes or another fiber's read
-- waits (both belong to the plain protocol); `closed` on a closed socket.
-- @param sock a connected socket
-- @tparam table opts client or server options
-- @treturn true, or `nil, err, code`
function M.starttls(sock, opts)
  opts = opts or {}
  local side = opts.server and "server" or "client"
  check(opts, side, "socket:starttls")
  if side == "client" and opts.verify ~= false and not opts.server_name and not opts.context then
    error("socket:starttls: a client that verifies needs server_name (or verify = false)", 3)
  end
  local ctx, err, code = opts.context
  if not ctx then
    ctx, err, code = core.tls_context(opts, side == "server")
    if not ctx then return nil, err, code end
  end
  return core.tls_start(sock, ctx, opts.server_name, opts.session, handshake_timeout(opts))
end

--- For `tcp.connect`: the client's handshake on a connected socket, with
-- `server_name` defaulting to `host`. Closes the socket if it fails.
-- @param sock a connected socket
-- @tparam table opts client options
-- @tparam ?string host the host connected to
-- @treturn true, or `nil, err, code`
function M.connect(sock, opts, host)
  check(opts, "client", "tcp.connect")
  local with_name = opts
  if opts.server_name == nil and host then
    with_name = { server_name = host }
    for k, v in pairs(opts) do with_name[k] = v end
  end
  local ok, err, code = M.starttls(sock, with_name)
  if not ok then sock:abort() end
  return ok, err, code
end

--- For servers: the context made from the `tls` option (before listening,
-- so a bad certificate or key fails `Server.create`).
-- @tparam table opts server options
-- @treturn context, or `nil, err, code`
function M.server_context(opts)
  check(opts, "server", "tcp.Server.create")
  if opts.context then return opts.context end
  return core.tls_context(opts, true)
end

--- For servers: the handshake of an accepted socket, in its own fiber. One
-- that fails (garbage, a stall past handshake_timeout, a rejected
-- certificate) is logged; the caller closes that connection only.
-- @param sock the accepted socket
-- @param ctx the server's context
-- @tparam table opts server options
-- @param address the peer's address, for the log line
-- @treturn true, or `nil, err, code`
function M.accept(sock, ctx, opts, address)
  local ok, err, code = core.tls_start(sock, ctx, nil, nil, handshake_timeout(opts))
  if not ok then core.log("coronet: TLS handshake with " .. tostring(address) .. " failed: " .. tostring(err)) end
  return ok, err, code
end

return M
