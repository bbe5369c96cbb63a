--- Where Procord connections, listening sockets and sets say that something
-- happened (bytes or an end of input, a connect, a disconnection), and where
-- `connection.wait` hears it. Internal to coronet.connection.
--
-- Each object carries `epoch`, counted up by `bump`, and `seen`, the epoch
-- its last `update` looked at: news is `epoch > seen`, so a wait started
-- after the news but before the update that would read it returns at once.
-- @module coronet.connection.news
local M = {}

local listeners = {}

--- Counts news on `obj` and tells every waiting `wait`.
function M.bump(obj)
  obj.epoch = obj.epoch + 1
  for listener in pairs(listeners) do listener() end
end

--- True when `obj` has news its last update did not see.
function M.pending(obj) return obj.epoch > obj.seen end

--- The last update saw everything up to now.
function M.mark_seen(obj) obj.seen = obj.epoch end

--- `listener()` runs at every bump until `unlisten`; it must not raise.
function M.listen(listener) listeners[listener] = true end

--- `listener` is told nothing more.
function M.unlisten(listener) listeners[listener] = nil end

return M
