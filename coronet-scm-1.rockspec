rockspec_format = "3.0"
package = "coronet"
version = "scm-1"

source = {
   -- Set to the project's real repository before publishing; `luarocks make`
   -- from a checkout does not read it.
   url = "git+https://github.com/coronet/coronet.git",
}

description = {
   summary = "TCP for Lua 5.4 on libuv, written as plain sequential code",
   detailed = [[
A C core on libuv owns the sockets, buffers and servers; a thin binding
exposes them as calls that yield the current fiber and are resumed from
libuv's callbacks. The API follows OCaml Async's Tcp and Tcp.Server.
]],
   labels = { "networking", "tcp", "libuv", "coroutines" },
}

dependencies = {
   "lua >= 5.4, < 5.5",
}

external_dependencies = {
   LIBUV = {
      header = "uv.h",
      library = "uv",
   },
   OPENSSL = {
      header = "openssl/ssl.h",
      library = "ssl",
   },
}

build = {
   type = "cmake",
   variables = {
      CMAKE_BUILD_TYPE = "Release",
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
      CORONET_TESTS = "OFF",
      LUA_INCLUDE_DIR = "$(LUA_INCDIR)",
      -- Where CMakeLists.txt's install rules put coronet/core.so and
      -- coronet/*.lua. Not LUA_LIBDIR: pkg_search_module(LUA) owns that name.
      LIBDIR = "$(LIBDIR)",
      LUADIR = "$(LUADIR)",
      -- A libuv or an OpenSSL outside the standard places (`luarocks make
      -- LIBUV_DIR=/opt/uv OPENSSL_DIR=/opt/ssl`): pkg-config looks in
      -- <dir>/lib/pkgconfig first, and the module keeps those library
      -- directories as its run path.
      CMAKE_PREFIX_PATH = "$(LIBUV_DIR);$(OPENSSL_DIR)",
      CMAKE_INSTALL_RPATH_USE_LINK_PATH = "ON",
   },
}
