-- A handler module that loads only in the calling state (the spec sets the
-- global first): worker states fail to load it.
if not CORONET_SPEC_MAIN_STATE then error("net_workers_main_only: this state may not load me") end
return { echo = require("net_workers_fixture").echo }
