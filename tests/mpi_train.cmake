# Data-parallel training checks (tests/mpi_train_check.c): equivalence of N ranks and gradient
# accumulation, uneven data, a failing rank, mismatched configs. Needs MPI and mpirun; uses the
# mpirun and flags found in tests/CMakeLists.txt.
if(DTRAIN_HAVE_MPI AND DTRAIN_MPIRUN)
  add_executable(mpi_train_check mpi_train_check.c)
  target_link_libraries(mpi_train_check PRIVATE dtrain_testlib)
  add_test(NAME mpi_train
    COMMAND mpi_train_check $<TARGET_FILE:dtrain> ${DTRAIN_MPIRUN} ${DTRAIN_MPIRUN_FLAGS})
  set_tests_properties(mpi_train PROPERTIES TIMEOUT 600
    ENVIRONMENT "OMP_NUM_THREADS=1;ASAN_OPTIONS=detect_leaks=0")
endif()
