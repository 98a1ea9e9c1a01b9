# CUDA backend tests that run without a GPU: cuDNN plans built ahead of time for a described
# device (tests/cuda/*.json). Only with the CUDA backend.
if(DTRAIN_HAVE_CUDA)
  add_executable(test_cudnn_plans ${CMAKE_CURRENT_SOURCE_DIR}/cuda/test_cudnn_plans.c)
  target_include_directories(test_cudnn_plans PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(test_cudnn_plans PRIVATE dtrain_core)
  add_test(NAME test_cudnn_plans
    COMMAND test_cudnn_plans ${CMAKE_CURRENT_SOURCE_DIR}/cuda/h200-deviceprop.json)
  set_tests_properties(test_cudnn_plans PROPERTIES TIMEOUT 600 LABELS cuda)
endif()
