# dtrain eval's own results folder and data.val_root (tests/eval_folders_check.sh): a training
# run's files stay byte-identical after evaluations. Included from tests/CMakeLists.txt.
add_test(NAME eval_folders
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/eval_folders_check.sh $<TARGET_FILE:dtrain>
    $<TARGET_FILE:make_learnable_imagefolder>)
set_tests_properties(eval_folders PROPERTIES TIMEOUT 300)
