--- Child processes and descriptors as sockets. `spawn` starts a program
-- whose stdin and stdout are sockets of this process; `open_descriptor`
-- makes a socket over any descriptor libuv can stream (a pipe, a socket, a
-- terminal), such as `io.stdin` or a handle from `io.popen`. Both give the
-- usual socket, with its reader and writer (coronet.socket). The process
-- methods are written in C (csrc/binding/lprocess.c); this module documents
-- them. Every method is also a function of this module taking the process
-- first.
-- @module coronet.process
local core = require "coronet.core"
require "coronet.socket"

local M = {}
local methods = core.methods.process

--- Starts `file` (a path, or a name looked up in PATH) with `args` after
-- its name; its stdin and stdout are pipes to this process (socket pairs,
-- as libuv makes them), its stderr is this process's. Closing the stdin
-- socket's writer (or the socket) makes the child read EOF. The stdin
-- socket cannot be read and the stdout socket cannot be written (their
-- reader and writer report `"closed"`).
-- @tparam string file
-- @tparam[opt] {string,...} args the arguments after the program's name
-- @tparam[opt] table opts `env`: an array of `"NAME=value"` strings
-- replacing the environment (default: this process's); `cwd`: the directory
-- @return process, stdin_socket, stdout_socket, or `nil, err, code`
-- (`ENOENT` naming the program when it is not found; nothing is left open)
M.spawn = core.spawn_process

--- A socket over a duplicate of `fd`: an integer descriptor, or a Lua
-- file (`io.stdin`, `io.stdout`, a handle from `io.popen` or `io.open`).
-- Closing the socket closes the duplicate only: the caller's descriptor
-- stays open and usable, and a shared socket is neither shut down, nor
-- reset, nor drained (its peer sees the end once the caller closes its
-- copy too). A half the descriptor cannot do (a pipe's read end cannot
-- send) is closed from the start. TCP options are refused (`ENOTSUP`) on
-- anything but a TCP socket.
--
-- Caution: libuv sets `O_NONBLOCK` on the open file description of a pipe
-- or socket, which the caller's descriptor (and any process sharing it)
-- shares: a Lua file over it may then fail with "Resource temporarily
-- unavailable" where it used to block. A terminal is reopened by libuv and
-- keeps its mode. Bytes already in a Lua file's buffer are not seen by
-- the socket (flush a written file first).
-- @param fd integer >= 0 or a Lua file; a closed file raises
-- @return socket, or `nil, err, code`: `EBADF` for a descriptor not open
-- (`"descriptor 7: bad file descriptor (EBADF)"`), `EINVAL` for one libuv
-- cannot stream (`"descriptor 7 is a regular file: libuv cannot stream
-- it (EINVAL)"`; also a device other than a terminal, a directory, a
-- datagram or listening socket)
M.open_descriptor = core.open_descriptor

--- The child's process id.
-- @function pid
-- @treturn integer

--- Sends a signal to the child.
-- @function kill
-- @param[opt="SIGTERM"] signal a name (`"SIGTERM"`, `"TERM"`, `"KILL"`,
-- `"INT"`, `"HUP"`, `"QUIT"`, `"USR1"`, `"USR2"`) or a number; an unknown
-- name raises
-- @return true, or `nil, err, "ESRCH"` once the child has exited (its pid
-- may name another process by then)

--- How the child ended: `nil` while it runs; then its exit code and the
-- number of the signal that ended it (`nil` when none).
-- @function exit_status
-- @return code, signal

--- Waits (in a fiber) until the child has exited; at once if it has.
-- @function wait
-- @tparam[opt] number timeout seconds
-- @return code, signal (as `exit_status`), or `nil, err, code`:
-- `"timeout"`, `"cancelled"`, or `"closed"` if the process is closed meanwhile

--- Lets go of the process; never kills the child, which runs on and is
-- reaped when it exits. `__gc` and `__close` do the same. The child of a
-- process still running when `coronet.run` ends (or the Lua state closes)
-- is sent SIGTERM (SIGKILL at the state's close) and reaped. Methods other
-- than `close` raise afterwards.
-- @function close

for name, fn in pairs(methods) do
  M[name] = fn
end

return M
