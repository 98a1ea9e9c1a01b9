# test_hostile_inputs runs the dtrain binary some thirty times (three short trainings): more time
# than the default on a loaded machine. Included from tests/CMakeLists.txt.
set_tests_properties(test_hostile_inputs PROPERTIES TIMEOUT 1800)
