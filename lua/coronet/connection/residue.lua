--- What a Procord connection had received but not consumed when it was
-- disconnected: its reader's bytes, taken out before the socket closed (a
-- closed reader drops its buffer). It answers the reader's non-waiting
-- calls (`buffered`, `peek_at`, `try_read`, `try_really_read`, `discard`,
-- `try_read_line`) the same way, so receiving after a disconnection reads
-- what was there. Internal to coronet.connection.
-- @module coronet.connection.residue
local Residue = {}
Residue.__index = Residue

local M = {}

--- A residue holding `bytes`.
function M.new(bytes) return setmetatable({ bytes = bytes, pos = 1 }, Residue) end

--- The residue of a connection that never received anything.
M.empty = M.new("")

function Residue:buffered() return #self.bytes - self.pos + 1 end

-- Counts are clamped to what is buffered first: pos + offset or + n could overflow.
function Residue:peek_at(offset, n)
  local buffered = self:buffered()
  if offset >= buffered then return "" end
  local first = self.pos + offset
  return self.bytes:sub(first, first + math.min(n, buffered - offset) - 1)
end

function Residue:try_read(n)
  n = math.min(n or math.maxinteger, self:buffered())
  local bytes = self:peek_at(0, n)
  self.pos = self.pos + n
  return bytes
end

function Residue:try_really_read(n)
  if self:buffered() < n then return nil end
  return self:try_read(n)
end

function Residue:discard(n)
  n = math.min(n, self:buffered())
  self.pos = self.pos + n
  return n
end

-- The reader's line rule: the line without its "\n" and one "\r" before it.
function Residue:try_read_line()
  local stop = self.bytes:find("\n", self.pos, true)
  if not stop then return nil end
  local last = stop - 1
  if last >= self.pos and self.bytes:byte(last) == 13 then last = last - 1 end
  local line = self.bytes:sub(self.pos, last)
  self.pos = stop + 1
  return line
end

return M
