# The install rules (tests/install_check.sh): cmake --install into a temporary prefix, then the
# installed dtrain, dtrain-run and module file used from outside the source tree. Included from
# tests/CMakeLists.txt.
add_test(NAME install_prefix
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install_check.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR}
    $<TARGET_FILE:make_learnable_imagefolder>)
set_tests_properties(install_prefix PROPERTIES TIMEOUT 300)
