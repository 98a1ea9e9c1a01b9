# Checkpoints, resume, signals, write faults, the output.dir lock and the non-finite guard
# (tests/reliability_check.c) on one rank, and with mpirun on two (plus the watchdog).
add_executable(reliability_check reliability_check.c)
target_link_libraries(reliability_check PRIVATE dtrain_testlib)
add_test(NAME reliability COMMAND reliability_check single $<TARGET_FILE:dtrain>)
set_tests_properties(reliability PROPERTIES TIMEOUT 1800
  ENVIRONMENT "OMP_NUM_THREADS=1;ASAN_OPTIONS=detect_leaks=0")
if(DTRAIN_HAVE_MPI AND DTRAIN_MPIRUN)
  add_test(NAME reliability_mpi
    COMMAND reliability_check mpi $<TARGET_FILE:dtrain> ${DTRAIN_MPIRUN} ${DTRAIN_MPIRUN_FLAGS})
  set_tests_properties(reliability_mpi PROPERTIES TIMEOUT 1800
    ENVIRONMENT "OMP_NUM_THREADS=1;ASAN_OPTIONS=detect_leaks=0")
endif()
