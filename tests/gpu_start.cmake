# Start-up of the CUDA build without a GPU (tests/gpu_start_check.sh): NCCL is loaded at run
# time, not linked. Only with the CUDA backend and NCCL's header.
if(DTRAIN_HAVE_CUDA AND DTRAIN_HAVE_NCCL)
  add_test(NAME gpu_start_linkage
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gpu_start_check.sh linkage $<TARGET_FILE:dtrain>)
  set_tests_properties(gpu_start_linkage PROPERTIES TIMEOUT 120
    ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
endif()

# Without a usable GPU (skipped where one is visible): runtime.device=cuda refused with the
# reason, auto falling back with it, a missing cuDNN named by the launcher. Every build.
add_test(NAME gpu_start_device
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gpu_start_check.sh device $<TARGET_FILE:dtrain>
    $<TARGET_FILE:make_learnable_imagefolder> ${CMAKE_C_COMPILER})
set_tests_properties(gpu_start_device PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
  ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
