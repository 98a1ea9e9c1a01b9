# Helper programs built with the tests but not tests themselves: the e2e test's synthetic
# dataset as a command, for training runs by hand or by tools/gpu-check.sh.
add_executable(make_learnable_imagefolder ${CMAKE_CURRENT_SOURCE_DIR}/tools/make_learnable_imagefolder.c)
target_link_libraries(make_learnable_imagefolder PRIVATE dtrain_testlib)
