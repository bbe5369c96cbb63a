-- A handler module for spec/net_lifetime_spec.lua that calls coronet.run while
-- it loads (in a worker state, where the loop is already running).
require("coronet").run(function() end)
return { handler = function() end }
