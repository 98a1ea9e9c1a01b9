# The CPU backend's run-time choices (src/backend/cpu/cpu_isa.c): the backend op tests (and the
# model and PyTorch-reference tests, which run the whole network) again with
# oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA), so that an AVX-512 machine also tests the 8-channel
# layout and the kernels an AVX2 machine runs; the bf16 convolutions (SKIPPED without AVX512-BF16
# or AMX); and short training runs uncapped and capped (tests/cpu_isa_check.sh). Included from
# tests/CMakeLists.txt.
file(GLOB dtrain_cpu_isa_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test_backend_*.c)
list(APPEND dtrain_cpu_isa_tests ${CMAKE_CURRENT_SOURCE_DIR}/test_model.c
  ${CMAKE_CURRENT_SOURCE_DIR}/test_reference.c)
foreach(source ${dtrain_cpu_isa_tests})
  get_filename_component(name ${source} NAME_WE)
  add_test(NAME ${name}_avx2 COMMAND ${name} cpu WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(${name}_avx2 PROPERTIES TIMEOUT 600
    ENVIRONMENT "DTRAIN_SOURCE_DIR=${PROJECT_SOURCE_DIR};OMP_NUM_THREADS=2;ONEDNN_MAX_CPU_ISA=AVX2")
endforeach()

add_test(NAME test_backend_conv_bf16 COMMAND test_backend_conv cpu bf16
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(test_backend_conv_bf16 PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_NUM_THREADS=2")

foreach(mode fp32 bf16)
  add_test(NAME cpu_isa_training_${mode}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cpu_isa_check.sh ${mode} $<TARGET_FILE:dtrain>
      $<TARGET_FILE:make_learnable_imagefolder>)
  set_tests_properties(cpu_isa_training_${mode} PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77
    ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
endforeach()
