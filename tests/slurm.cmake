# The Slurm job scripts of cluster/ on a throwaway one-node Slurm (tests/slurm/): registered where
# Slurm's daemons and munge are installed (tools/test.sh installs them), not in sanitizer
# builds (it tests the scripts and Slurm's launch of dtrain; the reliability tests cover the same
# code paths of dtrain under the sanitizers). Needs root; reports SKIPPED (exit 77) otherwise.
find_program(DTRAIN_SLURMCTLD slurmctld PATHS /usr/sbin)
find_program(DTRAIN_SLURMD slurmd PATHS /usr/sbin)
find_program(DTRAIN_MUNGED munged PATHS /usr/sbin)
if(NOT DTRAIN_SANITIZE AND DTRAIN_SLURMCTLD AND DTRAIN_SLURMD AND DTRAIN_MUNGED)
  add_test(NAME slurm_cluster_scripts
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm/cluster_scripts_check.sh ${PROJECT_SOURCE_DIR}
      $<TARGET_FILE:dtrain> $<TARGET_FILE:make_learnable_imagefolder>
      $<TARGET_FILE:bench_make_photos>)
  set_tests_properties(slurm_cluster_scripts PROPERTIES TIMEOUT 420 SKIP_RETURN_CODE 77
    LABELS slurm)
endif()
