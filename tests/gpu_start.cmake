# Start-up of the CUDA build without a GPU (tests/gpu_start_check.sh): NCCL is loaded at run
# time, not linked. Only with the CUDA backend and NCCL's header.
if(DTRAIN_HAVE_CUDA AND DTRAIN_HAVE_NCCL)
  add_test(NAME gpu_start_linkage
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gpu_start_check.sh linkage $<TARGET_FILE:dtrain>)
  set_tests_properties(gpu_start_linkage PROPERTIES TIMEOUT 120)
endif()

# A CUDA build whose CUDA module cannot load (no cuDNN or cuBLAS on the machine): auto falls back
# to the CPU with the missing library named, cuda is exit 2. With or without a GPU.
if(DTRAIN_HAVE_CUDA)
  add_test(NAME gpu_start_module
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gpu_start_check.sh module $<TARGET_FILE:dtrain>
      $<TARGET_FILE:make_learnable_imagefolder> ${CMAKE_C_COMPILER})
  set_tests_properties(gpu_start_module PROPERTIES TIMEOUT 300)
endif()

# Without a usable GPU (skipped where one is visible): runtime.device=cuda refused with the
# reason, auto falling back with it. Every build.
add_test(NAME gpu_start_device
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gpu_start_check.sh device $<TARGET_FILE:dtrain>
    $<TARGET_FILE:make_learnable_imagefolder> ${CMAKE_C_COMPILER})
set_tests_properties(gpu_start_device PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)

# One full-size training step (224 px, batch 32) on the GPU against the CPU twin: loss, every
# gradient, parameters after SGD, at fp32/tf32/bf16 (label gpu; SKIPPED without a GPU). The same
# harness with the CPU backend as the device side runs everywhere, at a small size.
add_executable(cuda_fullsize_check ${CMAKE_CURRENT_SOURCE_DIR}/cuda/cuda_fullsize_check.c)
target_link_libraries(cuda_fullsize_check PRIVATE dtrain_testlib)
add_test(NAME cuda_fullsize_harness_cpu COMMAND cuda_fullsize_check cpu 64 4)
set_tests_properties(cuda_fullsize_harness_cpu PROPERTIES TIMEOUT 600
  ENVIRONMENT "OMP_NUM_THREADS=2")
if(DTRAIN_HAVE_CUDA)
  add_test(NAME cuda_fullsize_check COMMAND cuda_fullsize_check cuda 224 32)
  set_tests_properties(cuda_fullsize_check PROPERTIES TIMEOUT 600 LABELS gpu
    SKIP_RETURN_CODE 77)
endif()

# The real NCCL path on one GPU (label gpu; SKIPPED without a GPU).
if(DTRAIN_HAVE_CUDA)
  add_executable(nccl_one_rank_check ${CMAKE_CURRENT_SOURCE_DIR}/cuda/nccl_one_rank_check.c)
  target_link_libraries(nccl_one_rank_check PRIVATE dtrain_testlib)
  add_test(NAME nccl_one_rank_check COMMAND nccl_one_rank_check)
  set_tests_properties(nccl_one_rank_check PROPERTIES TIMEOUT 300 LABELS gpu SKIP_RETURN_CODE 77)
endif()

# tools/gpu-check.sh without a GPU: exit 1 with the reason, nothing passed (skipped with a GPU).
add_test(NAME gpu_start_check_script
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gpu_start_check.sh check ${PROJECT_SOURCE_DIR})
set_tests_properties(gpu_start_check_script PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77)
