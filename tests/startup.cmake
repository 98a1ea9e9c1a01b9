# Start-up checks of the dtrain executable (tests/startup_check.sh): the thread counts it picks
# (taskset, OMP_NUM_THREADS, runtime.threads), the OpenMP wait policy in force, the process name
# and argv under mpirun, and that it runs under valgrind. Included from tests/CMakeLists.txt.
set(dtrain_startup_mpirun "")
if(DTRAIN_HAVE_MPI AND DTRAIN_MPIRUN)
  set(dtrain_startup_mpirun ${DTRAIN_MPIRUN} ${DTRAIN_MPIRUN_FLAGS})
endif()
add_test(NAME startup_threads_and_name
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/startup_check.sh threads $<TARGET_FILE:dtrain>
    $<TARGET_FILE:make_learnable_imagefolder> ${dtrain_startup_mpirun})
set_tests_properties(startup_threads_and_name PROPERTIES TIMEOUT 300)

# valgrind cannot run a sanitizer build (nor gdb one usefully); registered when either tool is
# installed, and the script fails if it finds neither.
find_program(DTRAIN_VALGRIND valgrind)
find_program(DTRAIN_GDB gdb)
if(NOT DTRAIN_SANITIZE AND (DTRAIN_VALGRIND OR DTRAIN_GDB))
  add_test(NAME startup_debuggers
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/startup_check.sh debuggers $<TARGET_FILE:dtrain>)
  set_tests_properties(startup_debuggers PROPERTIES TIMEOUT 300)
endif()
