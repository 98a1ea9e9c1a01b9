# Install rules and the Debian package (CPack): `cmake --install build --prefix P` lays out
#   P/bin/dtrain, P/bin/dtrain-run            the executable and the local launcher
#   P/lib/dtrain/libdtrain_cuda.so            the CUDA backend (CUDA builds), loaded on first use,
#                                             found relative to bin/dtrain
#   P/share/dtrain/{configs,cluster,docs}     example configs, Slurm scripts, documentation
#   P/share/dtrain/modulefiles/dtrain/V.lua   an Lmod module file (relocatable: it finds P itself)
#   P/share/man/man1/dtrain.1                 the manual page
# The run paths keep the CUDA libraries' folders of a CUDA build (not system folders).
# Included from CMakeLists.txt.
include(GNUInstallDirs)
set(DTRAIN_INSTALL_MODULE_DIR "${CMAKE_INSTALL_LIBDIR}/dtrain")
file(RELATIVE_PATH dtrain_module_from_bin "/p/${CMAKE_INSTALL_BINDIR}" "/p/${DTRAIN_INSTALL_MODULE_DIR}")
target_compile_definitions(dtrain_core PRIVATE DTRAIN_MODULE_DIR="${dtrain_module_from_bin}")

install(TARGETS dtrain RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
set_target_properties(dtrain PROPERTIES INSTALL_RPATH "${CMAKE_BUILD_RPATH}")
if(DTRAIN_HAVE_CUDA)
  install(TARGETS dtrain_cuda LIBRARY DESTINATION ${DTRAIN_INSTALL_MODULE_DIR})
  set_target_properties(dtrain_cuda PROPERTIES INSTALL_RPATH "${CMAKE_BUILD_RPATH}")
endif()
install(PROGRAMS launch/dtrain-run DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY configs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/dtrain/configs
  FILES_MATCHING PATTERN "*.yaml")
# the scaling benchmark's script needs the source tree's bench/: not installed
install(DIRECTORY cluster/ DESTINATION ${CMAKE_INSTALL_DATADIR}/dtrain/cluster
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ
    WORLD_EXECUTE
  PATTERN bench-scaling.sbatch EXCLUDE)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DATADIR}/dtrain/docs)
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/dtrain/docs PATTERN "*.1" EXCLUDE)
install(FILES docs/dtrain.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
configure_file(cmake/dtrain-module.lua.in dtrain-module.lua @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/dtrain-module.lua
  DESTINATION ${CMAKE_INSTALL_DATADIR}/dtrain/modulefiles/dtrain RENAME ${PROJECT_VERSION}.lua)

# cpack -G DEB (in the build folder): the package's dependencies come from dpkg-shlibdeps on the
# installed executable (oneDNN, libjpeg-turbo, libpng, libyaml, Open MPI, libgomp...).
# Build a package for other machines with -DDTRAIN_CUDA=OFF: the CUDA toolkit, cuDNN and NCCL
# are not Debian packages, so a CUDA build's package would need them installed by other means.
set(CPACK_PACKAGE_NAME dtrain)
set(CPACK_PACKAGE_VENDOR "dtrain")
set(CPACK_PACKAGE_CONTACT "dtrain maintainers <dtrain@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "distributed trainer for image classifiers (ResNet-18, MPI, CPU and CUDA backends)")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# mpirun for dtrain-run; the libraries' packages come from dpkg-shlibdeps
if(DTRAIN_HAVE_MPI)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "openmpi-bin")
endif()
set(CPACK_GENERATOR DEB)
include(CPack)
