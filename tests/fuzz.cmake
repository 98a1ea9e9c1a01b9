# Fuzz targets for dtrain's parsers (tests/fuzz/fuzz_*.c).
#
# Every build runs the config, safetensors and checkpoint-folder targets for a bounded time in
# ctest (fuzz_config_short, fuzz_safetensors_short, fuzz_checkpoint_short: the checked-in seeds of tests/fuzz/corpus, then
# seeded mutations, at most 15 s each) under a small built-in driver, tests/fuzz/fuzz_driver.c, so
# gcc and the sanitizer build fuzz them too.
#
# libFuzzer harnesses (coverage-guided), opt-in and clang only:
#   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DDTRAIN_FUZZ=ON
# Each harness is compiled together with the sources it exercises (so they carry the fuzzer's
# coverage instrumentation), linked with the libraries those sources need, and gets a short
# ctest run (about 10 seconds). Longer runs by hand:
#   build-fuzz/tests/fuzz_safetensors -dict=tests/fuzz/safetensors.dict CORPUS_DIR
#   build-fuzz/tests/fuzz_config -dict=tests/fuzz/config.dict CORPUS_DIR
#   build-fuzz/tests/fuzz_checkpoint -dict=tests/fuzz/checkpoint.dict CORPUS_DIR
#     (state.json, checkpoints/latest and the member files a resume reads)
#   build-fuzz/tests/fuzz_image_decode CORPUS_DIR   (seed it with a few small JPEGs and PNGs)
option(DTRAIN_FUZZ "Build the libFuzzer harnesses (needs clang)" OFF)

# dtrain_add_short_fuzz(NAME HARNESS DICT file CORPUS dir): NAME_short, a bounded ctest run.
function(dtrain_add_short_fuzz name harness)
  cmake_parse_arguments(SHORT "" "DICT;CORPUS" "" ${ARGN})
  add_executable(${name}_short ${harness} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_driver.c)
  target_include_directories(${name}_short PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name}_short PRIVATE dtrain_core)
  add_test(NAME ${name}_short
    COMMAND ${name}_short -runs=200000 -max_total_time=15 -seed=1 -max_len=4096
      -dict=${SHORT_DICT} ${SHORT_CORPUS}
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(${name}_short PROPERTIES TIMEOUT 120 LABELS fuzz)
endfunction()

dtrain_add_short_fuzz(fuzz_config ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_config.c
  DICT ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/config.dict
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/config)
dtrain_add_short_fuzz(fuzz_safetensors ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_safetensors.c
  DICT ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/safetensors.dict
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/safetensors)
dtrain_add_short_fuzz(fuzz_checkpoint ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_checkpoint.c
  DICT ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/checkpoint.dict
  CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/checkpoint)

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
    file(GLOB dtrain_fuzz_config_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/config/*.c)
    dtrain_add_fuzzer(fuzz_config ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_config.c
      DICT ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/config.dict
      SOURCES ${dtrain_fuzz_config_sources} ${dtrain_fuzz_util_sources}
      LIBS PkgConfig::YAML)
    dtrain_add_fuzzer(fuzz_safetensors ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_safetensors.c
      DICT ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/safetensors.dict
      SOURCES
        ${PROJECT_SOURCE_DIR}/src/io/safetensors_read.c
        ${PROJECT_SOURCE_DIR}/src/io/safetensors_write.c
        ${dtrain_fuzz_util_sources})
    dtrain_add_fuzzer(fuzz_checkpoint ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_checkpoint.c
      DICT ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/checkpoint.dict
      SOURCES ${PROJECT_SOURCE_DIR}/src/io/checkpoint_read.c ${dtrain_fuzz_util_sources}
      LIBS Threads::Threads)
    dtrain_add_fuzzer(fuzz_image_decode ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_image_decode.c
      SOURCES
        ${PROJECT_SOURCE_DIR}/src/data/decode.c
        ${PROJECT_SOURCE_DIR}/src/data/decode_jpeg.c
        ${PROJECT_SOURCE_DIR}/src/data/decode_png.c
        ${PROJECT_SOURCE_DIR}/src/data/resize.c
        ${PROJECT_SOURCE_DIR}/src/data/resize_passes.c
        ${PROJECT_SOURCE_DIR}/src/data/resize_plan.c
        ${dtrain_fuzz_util_sources}
      LIBS PkgConfig::JPEG PNG::PNG Threads::Threads)
  endif()
endif()
