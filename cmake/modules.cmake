# Module boundaries, enforced by the compiler (docs/modules.md).
#
# The library is five layers, each an OBJECT library of its own:
#
#   tools, bench -> server -> ops, pool -> transport -> auth -> common
#
# A module compiles against a "view": a directory in the build tree that holds
# symbolic links to exactly the headers it may include, and nothing else: its
# own folder (its internal headers), the public headers of the modules below it
# (include/clink/*.h), and the few library-private headers a lower module
# offers to those above it (common/bytes.h, auth/tls_ctx.h). The repository
# root is on no module's include path, so `#include "pool/pool_int.h"` from
# auth/ or `#include "clink/pool.h"` from transport/ fails to compile.
# tests/boundaries.cmake proves it for every forbidden header.
#
# Each module links only its own dependencies: among library modules only the
# transport sees liburing and concurrencykit.

set(CLINK_VIEWS_DIR "${PROJECT_BINARY_DIR}/views")

# What each layer offers to the layers above it, as paths from the source root.
set(CLINK_OFFER_common include/clink/error.h include/clink/log.h include/clink/version.h common/bytes.h common/log_int.h)
set(CLINK_OFFER_auth include/clink/auth.h include/clink/accounts.h auth/tls_ctx.h)
set(CLINK_OFFER_transport include/clink/transport.h include/clink/stream.h include/clink/mysql.h include/clink/http.h include/clink/cq.h)
set(CLINK_OFFER_pool include/clink/pool.h)
set(CLINK_OFFER_ops include/clink/ops.h include/clink/admin.h)
set(CLINK_OFFER_server include/clink/config.h include/clink/methods.h include/clink/server.h include/clink/clink.h)

# The layers each module sits on (transitively).
set(CLINK_BELOW_common "")
set(CLINK_BELOW_auth common)
set(CLINK_BELOW_transport common auth)
set(CLINK_BELOW_pool common auth transport)
set(CLINK_BELOW_ops common auth transport pool)
set(CLINK_BELOW_server common auth transport pool ops)
set(CLINK_LIBRARY_MODULES common auth transport pool ops server)

# Programs (tools, bench, examples) see every public header and no library-private one.
set(CLINK_PUBLIC_HEADERS "")
foreach(m ${CLINK_LIBRARY_MODULES})
  foreach(h ${CLINK_OFFER_${m}})
    if(h MATCHES "^include/")
      list(APPEND CLINK_PUBLIC_HEADERS ${h})
    endif()
  endforeach()
endforeach()

# clink_view(NAME OWN_DIR HEADERS...): an INTERFACE target NAME whose include
# path is a view holding OWN_DIR (may be "") and the listed headers.
function(clink_view name own)
  set(view "${CLINK_VIEWS_DIR}/${name}")
  file(REMOVE_RECURSE "${view}")
  file(MAKE_DIRECTORY "${view}")
  foreach(h ${ARGN})
    string(REGEX REPLACE "^include/" "" rel "${h}")
    get_filename_component(dir "${view}/${rel}" DIRECTORY)
    file(MAKE_DIRECTORY "${dir}")
    file(CREATE_LINK "${PROJECT_SOURCE_DIR}/${h}" "${view}/${rel}" SYMBOLIC)
  endforeach()
  if(own)
    file(CREATE_LINK "${PROJECT_SOURCE_DIR}/${own}" "${view}/${own}" SYMBOLIC)
  endif()
  add_library(${name} INTERFACE)
  target_include_directories(${name} INTERFACE "${view}")
endfunction()

# clink_module(NAME SOURCES files... LINKS targets...): the OBJECT library
# clink_NAME for the folder NAME/, compiled against its view clink_NAME_view.
function(clink_module name)
  cmake_parse_arguments(M "" "" "SOURCES;LINKS" ${ARGN})
  set(headers ${CLINK_OFFER_${name}})
  foreach(b ${CLINK_BELOW_${name}})
    list(APPEND headers ${CLINK_OFFER_${b}})
  endforeach()
  # Its own offers that live in its folder are already there through OWN_DIR.
  list(FILTER headers EXCLUDE REGEX "^${name}/")
  clink_view(clink_${name}_view ${name} ${headers})
  add_library(clink_${name} OBJECT ${M_SOURCES})
  target_link_libraries(clink_${name} PRIVATE clink_${name}_view ${M_LINKS})
endfunction()

# Programs: every public header, nothing internal.
clink_view(clink_programs_view "" ${CLINK_PUBLIC_HEADERS})
