# Tar shards read by others: `dtrain pack` output read with the Python webdataset package in a
# virtual environment made by the test itself (tests/shards/webdataset_check.sh: webdataset and
# Pillow from PyPI, kept outside the build folder so that it is made once).
set(DTRAIN_TEST_WDS_VENV "$ENV{DTRAIN_TEST_WDS_VENV}")
if(NOT DTRAIN_TEST_WDS_VENV)
  set(DTRAIN_TEST_WDS_VENV /var/cache/dtrain/webdataset-venv)
endif()
add_test(NAME shards_webdataset
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/shards/webdataset_check.sh $<TARGET_FILE:dtrain>
    $<TARGET_FILE:make_learnable_imagefolder>)
set_tests_properties(shards_webdataset PROPERTIES TIMEOUT 900
  ENVIRONMENT "DTRAIN_TEST_WDS_VENV=${DTRAIN_TEST_WDS_VENV}")

# Under mpirun: 2 ranks from shards against the folder, and rank 0's file list used by rank 1.
if(DTRAIN_HAVE_MPI AND DTRAIN_MPIRUN)
  add_test(NAME shards_mpi
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/shards/mpi_shards_check.sh $<TARGET_FILE:dtrain>
      $<TARGET_FILE:make_learnable_imagefolder> ${DTRAIN_MPIRUN} ${DTRAIN_MPIRUN_FLAGS})
  set_tests_properties(shards_mpi PROPERTIES TIMEOUT 600 ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
endif()

# The training checks of tests/test_shards_train.c run dtrain about 16 times: in the sanitizer
# build on a loaded 2-core machine that takes longer than the C tests' 600 s.
set_tests_properties(test_shards_train PROPERTIES TIMEOUT 1800)
