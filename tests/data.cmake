# Data-pipeline tests that need more than a plain test program: the Fashion-MNIST converter is
# run as a command on synthetic IDX files. Included from tests/CMakeLists.txt.
add_executable(data_fashion_tool_check ${CMAKE_CURRENT_SOURCE_DIR}/data_fashion_tool_check.c)
target_link_libraries(data_fashion_tool_check PRIVATE dtrain_testlib)
add_test(NAME data_fashion_mnist_tool COMMAND data_fashion_tool_check
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(data_fashion_mnist_tool PROPERTIES TIMEOUT 120
  ENVIRONMENT "FASHION_TOOL=$<TARGET_FILE:fashion_mnist_to_imagefolder>")
