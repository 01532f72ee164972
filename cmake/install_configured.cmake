# install_configured.cmake - install one file made from a template at install
# time (run by `cmake --install`, see CMakeLists.txt), so that the paths in it
# are the ones it is installed under, --prefix included: the pkg-config file
# and the systemd unit of one build tree can go to /usr/local (make install)
# and to /usr (make deb).
#
# In:  LS_TEMPLATE (source path), LS_DEST (directory under the prefix),
#      LS_NAME (installed name), LS_LIBDIR (set by CMakeLists.txt's first
#      install rule), LS_VERSION.
# The template's @prefix@, @bindir@, @libdir@, @includedir@ and @version@ are
# replaced. DESTDIR is honoured and the file goes into install_manifest.txt.
file(READ "${LS_TEMPLATE}" text)
string(REPLACE "@prefix@" "${CMAKE_INSTALL_PREFIX}" text "${text}")
string(REPLACE "@bindir@" "${CMAKE_INSTALL_PREFIX}/bin" text "${text}")
string(REPLACE "@libdir@" "${CMAKE_INSTALL_PREFIX}/${LS_LIBDIR}" text "${text}")
string(REPLACE "@includedir@" "${CMAKE_INSTALL_PREFIX}/include" text "${text}")
string(REPLACE "@version@" "${LS_VERSION}" text "${text}")
set(dest "${CMAKE_INSTALL_PREFIX}/${LS_DEST}/${LS_NAME}")
message(STATUS "Installing: $ENV{DESTDIR}${dest}")
file(WRITE "$ENV{DESTDIR}${dest}" "${text}")
list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${dest}")
