# Stop signals (tests/stop_signals_check.c) with the writes slowed: SIGHUP, a second SIGINT
# during the report and CSV writes, SIGTERM after the last step on one process; and on two ranks
# SIGTERM/SIGINT/SIGHUP to launch/dtrain-run and SIGUSR1/SIGTERM to a plain mpirun.
add_executable(stop_signals_check stop_signals_check.c)
target_link_libraries(stop_signals_check PRIVATE dtrain_testlib)
add_test(NAME stop_signals COMMAND stop_signals_check single $<TARGET_FILE:dtrain>)
set_tests_properties(stop_signals PROPERTIES TIMEOUT 1200
  ENVIRONMENT "OMP_NUM_THREADS=1;ASAN_OPTIONS=detect_leaks=0")
if(DTRAIN_HAVE_MPI AND DTRAIN_MPIRUN)
  add_test(NAME stop_signals_mpi
    COMMAND stop_signals_check mpi $<TARGET_FILE:dtrain> ${PROJECT_SOURCE_DIR}/launch/dtrain-run
      ${DTRAIN_MPIRUN} ${DTRAIN_MPIRUN_FLAGS})
  set_tests_properties(stop_signals_mpi PROPERTIES TIMEOUT 1800
    ENVIRONMENT "OMP_NUM_THREADS=1;ASAN_OPTIONS=detect_leaks=0")
endif()
