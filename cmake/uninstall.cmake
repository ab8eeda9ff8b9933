# SPDX-License-Identifier: MIT
# cmake -P cmake/uninstall.cmake, in the build directory (`make uninstall`,
# `cmake --build BUILD --target uninstall`): removes every file the last
# install of this build put in place, as listed in install_manifest.txt.
set(manifest "${CMAKE_CURRENT_BINARY_DIR}/install_manifest.txt")
if(NOT EXISTS "${manifest}")
  message(FATAL_ERROR "uninstall: no ${manifest}: nothing was installed from this build directory")
endif()
file(STRINGS "${manifest}" files)
set(n 0)
foreach(f IN LISTS files)
  if(IS_SYMLINK "${f}" OR EXISTS "${f}")
    file(REMOVE "${f}")
    math(EXPR n "${n} + 1")
  endif()
endforeach()
message(STATUS "uninstall: removed ${n} files listed in ${manifest}")
