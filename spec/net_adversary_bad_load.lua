-- A handler module for spec/net_adversary_spec.lua that raises while it loads.
error("net_adversary_bad_load: raised at load time")
