# Hostile and unlucky output folders (tests/output_dir_check.sh): planted symlinks, another run's
# checkpoint, other programs' files, a folder moved mid-run, interrupted resumes, a FIFO or link
# loop at checkpoints/latest. Included from tests/CMakeLists.txt.
add_test(NAME output_dir
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/output_dir_check.sh $<TARGET_FILE:dtrain>
    $<TARGET_FILE:make_learnable_imagefolder>)
set_tests_properties(output_dir PROPERTIES TIMEOUT 900 ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
