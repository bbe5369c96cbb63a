--- The socket's operations as functions taking the socket first
-- (`socket.close(s)` is `s:close()`): getpeername, getsockname, reader,
-- writer, setoption, shutdown, getfd, settimeouts, gettimeouts, bind, close,
-- abort, is_closed, close_finished, stats, configure. They are written in C
-- (csrc/binding/lstream.c).
-- @module coronet.socket
return require("coronet.core").methods.socket
