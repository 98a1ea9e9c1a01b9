# The console as a terminal shows it (tests/console_check.py, on a pseudo-terminal): a run, a
# Ctrl-C and a second one, a stop at an epoch end, errors, --help/-h/-V, and a SIGINT to two
# ranks under mpirun. Included from tests/CMakeLists.txt.
find_program(DTRAIN_PYTHON3 python3 REQUIRED)
set(dtrain_console_mpirun "")
if(DTRAIN_HAVE_MPI AND DTRAIN_MPIRUN)
  set(dtrain_console_mpirun ${DTRAIN_MPIRUN} ${DTRAIN_MPIRUN_FLAGS})
endif()
add_test(NAME console_terminal
  COMMAND ${DTRAIN_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/console_check.py $<TARGET_FILE:dtrain>
    $<TARGET_FILE:make_learnable_imagefolder> ${dtrain_console_mpirun})
set_tests_properties(console_terminal PROPERTIES TIMEOUT 600)
