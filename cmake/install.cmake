# Install rules: headers, libclink (shared + static), CMake package
# (clinkTargets / clinkConfig / clinkConfigVersion), clink.pc and clink-static.pc.
#
# Consumers (README "Using clink from your build"):
#   find_package(clink 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE clink::clink)        # or clink::clink_static (libclink.a)
# or
#   cc app.c $(pkg-config --cflags --libs clink)            # clink-static for libclink.a
#
# Included from the top-level CMakeLists.txt, so PROJECT_* are clink's.
include(CMakePackageConfigHelpers)

set(CLINK_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/clink"
    CACHE STRING "Where clinkConfig.cmake and clinkTargets.cmake are installed (relative to the prefix)")
set(CLINK_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
    CACHE STRING "Where clink.pc and clink-static.pc are installed (relative to the prefix)")

# ---- first of all: refuse a half-built tree ----
# CMake cannot build at install time, and `cmake --install` copies file after file until one is missing
# (issue 18: after a build of the tools only, it copied the headers and the programs, then stopped at
# libclink.so). This rule runs before every rule that copies a file (the top-level CMakeLists.txt
# includes this file before adding tools/ and bench/; the library modules' folders, added earlier,
# install nothing) and stops before anything is copied, naming what is not built.
# It checks the library and every program in tools/ and bench/; the list is written once all
# directories are known (cmake_language(DEFER)), and each file's path comes from $<TARGET_FILE>.
set(CLINK_INSTALL_CHECK "${PROJECT_BINARY_DIR}/clink-install-check.cmake")
install(CODE "include(\"${CLINK_INSTALL_CHECK}\")" ALL_COMPONENTS)

function(clink_write_install_check)
  set(targets clink clink_static)
  get_property(subdirs DIRECTORY "${PROJECT_SOURCE_DIR}" PROPERTY SUBDIRECTORIES)
  foreach(d tools bench)
    if("${PROJECT_SOURCE_DIR}/${d}" IN_LIST subdirs)
      get_property(ts DIRECTORY "${PROJECT_SOURCE_DIR}/${d}" PROPERTY BUILDSYSTEM_TARGETS)
      foreach(t ${ts})
        get_target_property(type ${t} TYPE)
        if(type STREQUAL "EXECUTABLE")
          list(APPEND targets ${t})
        endif()
      endforeach()
    endif()
  endforeach()
  set(code "set(_clink_missing \"\")\n")
  foreach(t ${targets})
    string(APPEND code "if(NOT EXISTS \"$<TARGET_FILE:${t}>\")\n  list(APPEND _clink_missing ${t})\nendif()\n")
  endforeach()
  string(APPEND code [[
if(_clink_missing)
  list(JOIN _clink_missing " " _clink_missing)
  message(FATAL_ERROR "clink: not built yet: ${_clink_missing}. Nothing was installed. "
    "Build everything first (cmake --build @PROJECT_BINARY_DIR@), or at least: "
    "cmake --build @PROJECT_BINARY_DIR@ --target ${_clink_missing}")
endif()
unset(_clink_missing)
]])
  string(CONFIGURE "${code}" code @ONLY)
  file(GENERATE OUTPUT "${CLINK_INSTALL_CHECK}" CONTENT "${code}")
endfunction()
cmake_language(DEFER DIRECTORY "${PROJECT_SOURCE_DIR}" CALL clink_write_install_check)

# ---- headers: include/clink/*.h, and include/clink/unstable/*.h when present ----
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/clink"
        DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        COMPONENT Development
        FILES_MATCHING PATTERN "*.h")

# ---- libraries ----
# clink_common/clink_auth/clink_transport are OBJECT libraries consumed only
# through $<TARGET_OBJECTS>, so they are not part of the export set. Their
# include dirs are BUILD_INTERFACE only; clink/clink_static carry
# $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}> for consumers.
install(TARGETS clink clink_static
        EXPORT clinkTargets
        LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Runtime NAMELINK_COMPONENT Development
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Development
        RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Runtime)

# ---- CMake package: clink::clink, clink::clink_static ----
# The exported targets name PkgConfig::URING / PkgConfig::CK (as the build
# does); clinkConfig.cmake recreates them with pkg_check_modules.
install(EXPORT clinkTargets
        NAMESPACE clink::
        FILE clinkTargets.cmake
        DESTINATION "${CLINK_INSTALL_CMAKEDIR}"
        COMPONENT Development)

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/clinkConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/clinkConfig.cmake"
  INSTALL_DESTINATION "${CLINK_INSTALL_CMAKEDIR}")
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/clinkConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMajorVersion)
install(FILES "${PROJECT_BINARY_DIR}/clinkConfig.cmake" "${PROJECT_BINARY_DIR}/clinkConfigVersion.cmake"
        DESTINATION "${CLINK_INSTALL_CMAKEDIR}"
        COMPONENT Development)

# ---- pkg-config: clink.pc (shared) and clink-static.pc (libclink.a) ----
# libdir/includedir are written relative to ${prefix} unless GNUInstallDirs
# gave absolute paths. The prefix line is fixed up at install time so that
# `cmake --install <build> --prefix <dir>` yields correct files.
foreach(_clink_d LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_clink_d}}")
    set(CLINK_PC_${_clink_d} "${CMAKE_INSTALL_${_clink_d}}")
  else()
    set(CLINK_PC_${_clink_d} "\${prefix}/${CMAKE_INSTALL_${_clink_d}}")
  endif()
endforeach()
unset(_clink_d)

# The private dependencies' link flags, as pkg-config gave them to this build (clink.pc says why they
# are flags, not Requires.private modules); -L of the linker's own directories is left out.
set(CLINK_PC_PRIVATE_LIBS "")
foreach(_clink_flag ${URING_LDFLAGS} ${CK_LDFLAGS} ${INIH_LDFLAGS} ${XCRYPT_LDFLAGS} ${CJSON_LDFLAGS} -pthread)
  if(_clink_flag MATCHES "^-L(.*)" AND CMAKE_MATCH_1 IN_LIST CMAKE_C_IMPLICIT_LINK_DIRECTORIES)
    continue()
  endif()
  if(NOT _clink_flag IN_LIST CLINK_PC_PRIVATE_LIBS)
    list(APPEND CLINK_PC_PRIVATE_LIBS "${_clink_flag}")
  endif()
endforeach()
list(JOIN CLINK_PC_PRIVATE_LIBS " " CLINK_PC_PRIVATE_LIBS)
unset(_clink_flag)

foreach(_clink_pc clink clink-static)
  configure_file("${PROJECT_SOURCE_DIR}/cmake/${_clink_pc}.pc.in" "${PROJECT_BINARY_DIR}/${_clink_pc}.pc" @ONLY)
  set(CLINK_PC_BUILT "${PROJECT_BINARY_DIR}/${_clink_pc}.pc")
  set(CLINK_PC_STAGED "${PROJECT_BINARY_DIR}/clink-install/${_clink_pc}.pc")
  set(_clink_pc_code [[
file(READ "@CLINK_PC_BUILT@" _clink_pc)
string(REGEX REPLACE "(^|\n)prefix=[^\n]*" "\\1prefix=${CMAKE_INSTALL_PREFIX}" _clink_pc "${_clink_pc}")
file(WRITE "@CLINK_PC_STAGED@" "${_clink_pc}")
]])
  string(CONFIGURE "${_clink_pc_code}" _clink_pc_code @ONLY)
  install(CODE "${_clink_pc_code}" COMPONENT Development)
  install(FILES "${CLINK_PC_STAGED}"
          DESTINATION "${CLINK_INSTALL_PKGCONFIGDIR}"
          COMPONENT Development)
endforeach()
unset(_clink_pc)
unset(_clink_pc_code)
