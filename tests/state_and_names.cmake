# States and names (tests/state_and_names_check.c): no checkpoint with NaN/Inf (train.lr=3e38),
# --resume refusing a non-finite momentum, `dtrain predict` escaping hostile file and class names
# and checking its preprocessing like the training config, `dtrain eval` checking class names.
add_executable(state_and_names_check state_and_names_check.c)
target_link_libraries(state_and_names_check PRIVATE dtrain_testlib)
add_test(NAME state_and_names COMMAND state_and_names_check $<TARGET_FILE:dtrain>)
set_tests_properties(state_and_names PROPERTIES TIMEOUT 900
  ENVIRONMENT "OMP_NUM_THREADS=1;ASAN_OPTIONS=detect_leaks=0")
