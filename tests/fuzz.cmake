# libFuzzer harnesses for dtrain's parsers. Opt-in and clang only:
#   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DDTRAIN_FUZZ=ON
# Each harness is compiled together with the sources it exercises (so they carry the fuzzer's
# coverage instrumentation), linked with the libraries those sources need, and gets a short
# corpus-less ctest run (about 10 seconds). Longer runs by hand:
#   build-fuzz/tests/fuzz_safetensors -dict=tests/fuzz/safetensors.dict CORPUS_DIR
#   build-fuzz/tests/fuzz_image_decode CORPUS_DIR   (seed it with a few small JPEGs and PNGs)
option(DTRAIN_FUZZ "Build the libFuzzer harnesses (needs clang)" OFF)

# dtrain_add_fuzzer(NAME HARNESS [DICT file] SOURCES src... [LIBS target...])
function(dtrain_add_fuzzer name harness)
  cmake_parse_arguments(FUZZ "" "DICT" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${harness} ${FUZZ_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(${name} PRIVATE -g -fsanitize=fuzzer,address,undefined
    -fno-sanitize-recover=undefined)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${name} PRIVATE ${FUZZ_LIBS} m)
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
    # src/util/ (errors, files, byte buffers, logging): small self-contained helpers that any
    # harness's sources may call.
    file(GLOB dtrain_fuzz_util_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/util/*.c)
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
        ${dtrain_fuzz_util_sources})
    dtrain_add_fuzzer(fuzz_image_decode ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_image_decode.c
      SOURCES
        ${PROJECT_SOURCE_DIR}/src/data/decode.c
        ${PROJECT_SOURCE_DIR}/src/data/decode_jpeg.c
        ${PROJECT_SOURCE_DIR}/src/data/decode_png.c
        ${PROJECT_SOURCE_DIR}/src/data/resize.c
        ${PROJECT_SOURCE_DIR}/src/data/resize_avx2.c
        ${PROJECT_SOURCE_DIR}/src/data/resize_cache.c
        ${PROJECT_SOURCE_DIR}/src/data/resize_plan.c
        ${PROJECT_SOURCE_DIR}/src/data/resize_run.c
        ${PROJECT_SOURCE_DIR}/src/data/resize_scalar.c
        ${dtrain_fuzz_util_sources}
      LIBS PkgConfig::JPEG PNG::PNG Threads::Threads)
  endif()
endif()
