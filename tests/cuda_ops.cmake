# The CUDA backend against the CPU backend on a GPU (label gpu): op by op, and the whole model.
# Without a GPU, or in a build without the CUDA backend, each reports SKIPPED (exit 77), never a
# pass.
add_executable(cuda_ops_check ${CMAKE_CURRENT_SOURCE_DIR}/cuda/cuda_ops_check.c)
target_include_directories(cuda_ops_check PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(cuda_ops_check PRIVATE dtrain_testlib)
add_test(NAME cuda_ops_check COMMAND cuda_ops_check)
set_tests_properties(cuda_ops_check PROPERTIES TIMEOUT 600 LABELS gpu SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_NUM_THREADS=2")

# The whole model: 3 SGD steps on the GPU against the CPU backend from the same weights.
add_executable(cuda_model_check ${CMAKE_CURRENT_SOURCE_DIR}/cuda/cuda_model_check.c)
target_link_libraries(cuda_model_check PRIVATE dtrain_testlib)
add_test(NAME cuda_model_check COMMAND cuda_model_check)
set_tests_properties(cuda_model_check PROPERTIES TIMEOUT 600 LABELS gpu SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_NUM_THREADS=2")
# The backend tests themselves run against the CUDA backend too: tests/backends.cmake.

# The step as the trainer queues it: no host wait or device allocation in steady-state steps,
# a NaN step skipped on the device, deterministic runs repeatable.
add_executable(cuda_steady_state_check ${CMAKE_CURRENT_SOURCE_DIR}/cuda/cuda_steady_state_check.c)
target_link_libraries(cuda_steady_state_check PRIVATE dtrain_testlib)
add_test(NAME cuda_steady_state_check COMMAND cuda_steady_state_check)
set_tests_properties(cuda_steady_state_check PROPERTIES TIMEOUT 600 LABELS gpu
  SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_NUM_THREADS=2")
