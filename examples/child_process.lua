-- child_process.lua [EXPRESSION...]: talks to a child process, the
-- calculator bc, over pipes with coronet.connection, the polling way: send
-- a line, then update and wait until the answer's line is buffered.
-- Prints "EXPRESSION = ANSWER" for each expression.
local root = (arg[0]:match("^(.*)/examples/[^/]*$") or ".")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local coronet = require "coronet"
local connection = require "coronet.connection"

local expressions = { ... }
if #expressions == 0 then expressions = { "2^64", "scale = 20; 4 * a(1)", "sqrt(2) * sqrt(2)" } end

-- bc reads its stdin and answers each line on its stdout; -l loads its math library
local bc = assert(connection.spawn("bc", { "-q", "-l" }, { timeout = 10 }))
local waiter = connection.waiter(bc)

-- Polls until a whole line is buffered; nil and the reason if bc went away.
local function answer()
  while true do
    bc:update()
    local line = bc:receive_line()
    if line then return line end
    if not bc:alive() then return nil, select(2, bc:state()) end
    connection.wait(waiter, { timeout = 1 })
  end
end

for _, expression in ipairs(expressions) do
  bc:send(expression .. "\n")
  local line, err = answer()
  if not line then
    io.stderr:write("bc: ", tostring(err or "closed"), "\n")
    os.exit(1)
  end
  print(expression .. " = " .. line)
end

-- close_nicely sends what is left, then closes the pipes: bc reads EOF and exits
bc:close_nicely({ timeout = 2 })
while bc:alive() do
  connection.wait(waiter, { timeout = 0.1 })
  bc:update()
end
-- the loop runs on until bc has exited and been reaped
local process = bc:process()
while process:exit_status() == nil and coronet.step(0.1) do end
