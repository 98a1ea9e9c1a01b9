# CUDA backend tests that run without a GPU: cuDNN plans built ahead of time for a described
# device (tests/cuda/*.json). Only with the CUDA backend.
if(DTRAIN_HAVE_CUDA)
  add_executable(test_cudnn_plans ${CMAKE_CURRENT_SOURCE_DIR}/cuda/test_cudnn_plans.c)
  target_include_directories(test_cudnn_plans PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(test_cudnn_plans PRIVATE dtrain_core dtrain_cuda_linked)
  add_test(NAME test_cudnn_plans
    COMMAND test_cudnn_plans ${CMAKE_CURRENT_SOURCE_DIR}/cuda/h200-deviceprop.json)
  set_tests_properties(test_cudnn_plans PROPERTIES TIMEOUT 600 LABELS cuda)
endif()

# On a GPU (label gpu): the plans executed against a host reference, built from the handle and
# from the device's property JSON, which this writes (it can replace the synthetic one above).
if(DTRAIN_HAVE_CUDA)
  add_executable(cudnn_conv_gpu_check ${CMAKE_CURRENT_SOURCE_DIR}/cuda/cudnn_conv_gpu_check.c)
  target_include_directories(cudnn_conv_gpu_check PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(cudnn_conv_gpu_check PRIVATE dtrain_testlib)
  add_test(NAME cudnn_conv_gpu_check
    COMMAND cudnn_conv_gpu_check ${CMAKE_CURRENT_BINARY_DIR}/deviceprop.json)
  set_tests_properties(cudnn_conv_gpu_check PROPERTIES TIMEOUT 300 LABELS gpu SKIP_RETURN_CODE 77)
endif()
