# dtrain across nodes on a throwaway cluster of Linux namespaces (tests/multinode/): mpirun with
# a hostfile, Slurm with slurmctld on a head node and slurmd on three nodes, storage mistakes
# (multinode_quick), and node crashes, requeues and network cuts (multinode_faults). Registered
# in builds with MPI, not in sanitizer builds (they test launchers, scripts and node failures;
# the reliability tests cover the same code of dtrain under the sanitizers); each reports
# SKIPPED (exit 77) with the reason where root, ip, unshare, nsenter, Open MPI, Slurm's daemons
# or munge are missing, or where the machine refuses new namespaces.
if(NOT DTRAIN_SANITIZE AND DTRAIN_HAVE_MPI AND DTRAIN_MPIRUN)
  foreach(set quick faults)
    add_test(NAME multinode_${set}
      COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/multinode/multinode_check.sh ${PROJECT_SOURCE_DIR}
        $<TARGET_FILE:dtrain> $<TARGET_FILE:make_learnable_imagefolder> ${set})
    set_tests_properties(multinode_${set} PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77
      LABELS multinode RUN_SERIAL TRUE)
  endforeach()
endif()
