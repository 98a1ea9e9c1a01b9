# Tests of the communication layer that need more than a plain test program: MPI jobs started
# with mpirun (when dtrain is built with MPI; DTRAIN_MPIRUN and DTRAIN_MPIRUN_FLAGS come from
# tests/CMakeLists.txt) and a syntax/lint check of the shell scripts. Included from
# tests/CMakeLists.txt.

# ---- shell scripts: bash -n, plus shellcheck when it is installed (tests/check_scripts.sh) ------
find_program(DTRAIN_SHELLCHECK shellcheck)
add_test(NAME comm_scripts_syntax
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/check_scripts.sh ${PROJECT_SOURCE_DIR}
    "${DTRAIN_SHELLCHECK}")
set_tests_properties(comm_scripts_syntax PROPERTIES TIMEOUT 60)

# ---- launch/dtrain-run: the command lines it builds ----------------------------------------------
add_test(NAME comm_dtrain_run_args
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/dtrain_run_check.sh ${PROJECT_SOURCE_DIR}/launch/dtrain-run)
set_tests_properties(comm_dtrain_run_args PROPERTIES TIMEOUT 60)

# ---- cluster/preemptible.sbatch: resume, signal forwarding and requeue, with Slurm stand-ins ----
add_test(NAME comm_preemptible_sbatch
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/preemptible_sbatch_check.sh
    ${PROJECT_SOURCE_DIR}/cluster/preemptible.sbatch)
set_tests_properties(comm_preemptible_sbatch PROPERTIES TIMEOUT 60)

# ---- MPI jobs ------------------------------------------------------------------------------------
if(DTRAIN_HAVE_MPI AND TARGET MPI::MPI_C)
  add_executable(comm_mpi_check comm_mpi_check.c)
  target_link_libraries(comm_mpi_check PRIVATE dtrain_testlib)
  add_executable(comm_abort_check comm_abort_check.c)
  target_link_libraries(comm_abort_check PRIVATE dtrain_testlib)

  if(DTRAIN_MPIRUN)
    # Open MPI keeps allocations until exit and unloads its plugins, which LeakSanitizer reports
    # as thousands of unattributable leaks: leak checking is off for the MPI jobs (address and
    # UB checks stay on). The single-process tests keep it.
    set(dtrain_mpi_test_env
      "OMP_NUM_THREADS=1;DTRAIN_SOURCE_DIR=${PROJECT_SOURCE_DIR};ASAN_OPTIONS=detect_leaks=0")

    add_test(NAME comm_mpi
      COMMAND ${DTRAIN_MPIRUN} ${DTRAIN_MPIRUN_FLAGS} -np 3 $<TARGET_FILE:comm_mpi_check>)
    set_tests_properties(comm_mpi PROPERTIES TIMEOUT 120 ENVIRONMENT "${dtrain_mpi_test_env}")

    add_test(NAME comm_mpi_abort
      COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/comm_abort_check.sh 3
        ${DTRAIN_MPIRUN} ${DTRAIN_MPIRUN_FLAGS} -np 3 -- $<TARGET_FILE:comm_abort_check>)
    set_tests_properties(comm_mpi_abort PROPERTIES TIMEOUT 120
      ENVIRONMENT "${dtrain_mpi_test_env}")

    # `srun -n 3` without an MPI plugin starts three unrelated one-rank MPI worlds: each must stop
    # with a message naming the fix instead of training alone. (A Slurm step seen from the
    # environment; Open MPI then initialises as a singleton.)
    add_test(NAME comm_mpi_size_mismatch COMMAND comm_mpi_check)
    set_tests_properties(comm_mpi_size_mismatch PROPERTIES TIMEOUT 60
      ENVIRONMENT "${dtrain_mpi_test_env};SLURM_JOB_ID=5;SLURM_STEP_ID=0;SLURM_PROCID=1;SLURM_STEP_NUM_TASKS=3"
      PASS_REGULAR_EXPRESSION "srun started 3 tasks without a PMIx environment, so MPI cannot connect them: use srun --mpi=pmix")

    # The same MPI checks, started through the user-facing wrapper with 3 ranks (its own choice
    # of mpirun flags); comm_mpi_check stands in for dtrain and ignores the config argument.
    add_test(NAME comm_dtrain_run_mpi
      COMMAND ${PROJECT_SOURCE_DIR}/launch/dtrain-run -n 3 -- config-ignored-by-the-check.yaml)
    set_tests_properties(comm_dtrain_run_mpi PROPERTIES TIMEOUT 120
      ENVIRONMENT "${dtrain_mpi_test_env};DTRAIN_BIN=$<TARGET_FILE:comm_mpi_check>;DTRAIN_MPIRUN=${DTRAIN_MPIRUN}")
  else()
    message(STATUS "dtrain: no mpirun/mpiexec found; the MPI comm tests are not registered")
  endif()
endif()
