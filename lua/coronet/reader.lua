--- The reader's operations as functions taking the reader first
-- (`reader.read_line(r)` is `r:read_line()`): read, read_line, read_until,
-- really_read, peek, contents, receive, buffered, capacity, at_eof, close,
-- is_closed, socket. They are written in C (csrc/binding/lreader.c).
-- @module coronet.reader
return require("coronet.core").methods.reader
