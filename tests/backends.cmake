# The backend variants of the backend and model tests (testlib/backends.h): each of these
# programs takes a backend name; tests/CMakeLists.txt registers the cpu run under the program's
# own name, and builds with the CUDA toolkit add NAME_cuda, labelled gpu, which reports SKIPPED
# (exit 77) where no GPU or no CUDA training backend is usable and never passes without running.
if(DTRAIN_HAVE_CUDA)
  file(GLOB dtrain_backend_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test_backend_*.c)
  list(APPEND dtrain_backend_tests ${CMAKE_CURRENT_SOURCE_DIR}/test_model.c
    ${CMAKE_CURRENT_SOURCE_DIR}/test_reference.c)
  foreach(source ${dtrain_backend_tests})
    get_filename_component(name ${source} NAME_WE)
    add_test(NAME ${name}_cuda COMMAND ${name} cuda WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
    set_tests_properties(${name}_cuda PROPERTIES TIMEOUT 600 LABELS gpu SKIP_RETURN_CODE 77
      ENVIRONMENT "DTRAIN_SOURCE_DIR=${PROJECT_SOURCE_DIR};OMP_NUM_THREADS=2")
  endforeach()
endif()
