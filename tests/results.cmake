# Results of a run (tests/results/): a small training run shared as a ctest fixture, then
# TensorBoard's own reader against metrics.jsonl, report.html in headless Chromium with the
# network off, `dtrain predict` against the run's evaluation and bad files, and `dtrain eval` on 1
# and 2 ranks. The Python checks run in a virtual environment made by the set-up test
# (tests/results/python_env.sh: tensorboard, scikit-learn, pillow from PyPI), kept outside the
# build folder so that it is made once.
set(DTRAIN_TEST_VENV "$ENV{DTRAIN_TEST_VENV}")
if(NOT DTRAIN_TEST_VENV)
  set(DTRAIN_TEST_VENV /var/cache/dtrain/test-venv)
endif()
set(results_py ${DTRAIN_TEST_VENV}/bin/python)
set(results_check ${CMAKE_CURRENT_SOURCE_DIR}/results/results_check.py)
set(results_work ${CMAKE_CURRENT_BINARY_DIR}/results-run)
find_program(DTRAIN_CHROMIUM NAMES chromium chromium-browser)
if(NOT DTRAIN_CHROMIUM)
  set(DTRAIN_CHROMIUM chromium) # the test then fails naming it: tools/install-deps.sh installs it
endif()

add_test(NAME results_python_env COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/results/python_env.sh)
set_tests_properties(results_python_env PROPERTIES FIXTURES_SETUP results_python TIMEOUT 900
  ENVIRONMENT "DTRAIN_TEST_VENV=${DTRAIN_TEST_VENV}")

add_test(NAME results_train COMMAND ${results_py} ${results_check} train ${results_work} $<TARGET_FILE:dtrain>)
set_tests_properties(results_train PROPERTIES FIXTURES_REQUIRED results_python
  FIXTURES_SETUP results_run TIMEOUT 900)

add_test(NAME results_tensorboard COMMAND ${results_py} ${results_check} tensorboard ${results_work})
add_test(NAME results_report_browser COMMAND ${results_py} ${results_check} browser ${results_work} ${DTRAIN_CHROMIUM})
add_test(NAME results_predict COMMAND ${results_py} ${results_check} predict ${results_work} $<TARGET_FILE:dtrain>)
set(results_tests results_tensorboard results_report_browser results_predict)
if(DTRAIN_HAVE_MPI AND DTRAIN_MPIRUN)
  add_test(NAME results_eval_ranks COMMAND ${results_py} ${results_check} eval ${results_work}
    $<TARGET_FILE:dtrain> ${DTRAIN_MPIRUN} ${DTRAIN_MPIRUN_FLAGS})
  list(APPEND results_tests results_eval_ranks)
endif()
set_tests_properties(${results_tests} PROPERTIES FIXTURES_REQUIRED "results_python;results_run"
  TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=1")
if(DTRAIN_HAVE_MPI AND DTRAIN_MPIRUN) # the MPI job: no leak checking (tests/comm.cmake)
  set_tests_properties(results_eval_ranks PROPERTIES
    ENVIRONMENT "OMP_NUM_THREADS=1;ASAN_OPTIONS=detect_leaks=0")
endif()
