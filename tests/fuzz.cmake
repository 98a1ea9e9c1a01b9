# libFuzzer harnesses for dtrain's parsers. Opt-in and clang only:
#   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DDTRAIN_FUZZ=ON
# Each harness is compiled together with the sources it exercises (so they carry the fuzzer's
# coverage instrumentation) and gets a short corpus-less ctest run (about 10 seconds). Longer
# runs by hand: build-fuzz/tests/fuzz_safetensors -dict=tests/fuzz/safetensors.dict CORPUS_DIR
option(DTRAIN_FUZZ "Build the libFuzzer harnesses (needs clang)" OFF)

# dtrain_add_fuzzer(NAME HARNESS [DICT file] SOURCES src...)
function(dtrain_add_fuzzer name harness)
  cmake_parse_arguments(FUZZ "" "DICT" "SOURCES" ${ARGN})
  add_executable(${name} ${harness} ${FUZZ_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(${name} PRIVATE -g -fsanitize=fuzzer,address,undefined
    -fno-sanitize-recover=undefined)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${name} PRIVATE m)
  set(dict_argument "")
  if(FUZZ_DICT)
    set(dict_argument "-dict=${FUZZ_DICT}")
  endif()
  add_test(NAME ${name}_10s
    COMMAND ${name} -max_total_time=10 -seed=1 -max_len=4096 -rss_limit_mb=2048 ${dict_argument})
  set_tests_properties(${name}_10s PROPERTIES TIMEOUT 120 LABELS fuzz)
endfunction()

if(DTRAIN_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(WARNING "DTRAIN_FUZZ=ON needs clang (compiler is ${CMAKE_C_COMPILER_ID}); "
                    "the fuzz harnesses are not built")
  else()
    dtrain_add_fuzzer(fuzz_safetensors ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_safetensors.c
      DICT ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/safetensors.dict
      SOURCES
        ${PROJECT_SOURCE_DIR}/src/io/safetensors_read.c
        ${PROJECT_SOURCE_DIR}/src/io/safetensors_header.c
        ${PROJECT_SOURCE_DIR}/src/io/safetensors_dtype.c
        ${PROJECT_SOURCE_DIR}/src/io/safetensors_convert.c
        ${PROJECT_SOURCE_DIR}/src/io/safetensors_write.c
        ${PROJECT_SOURCE_DIR}/src/io/json_scan.c
        ${PROJECT_SOURCE_DIR}/src/io/half_float.c
        ${PROJECT_SOURCE_DIR}/src/util/error.c)
  endif()
endif()
