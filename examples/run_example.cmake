# Runs an example program (-DPROGRAM) and fails unless it exits 0 and prints exactly the text
# of -DEXPECTED. Used by examples/CMakeLists.txt: `cmake -DPROGRAM=... -DEXPECTED=... -P this`.
execute_process(COMMAND ${PROGRAM} OUTPUT_VARIABLE actual ERROR_VARIABLE errors
                RESULT_VARIABLE exit_code)
file(READ ${EXPECTED} expected)
if(NOT exit_code EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${exit_code}\n${errors}")
endif()
if(NOT actual STREQUAL expected)
  message(FATAL_ERROR "${PROGRAM}: output differs from ${EXPECTED}\n--- expected\n${expected}"
                      "--- actual\n${actual}")
endif()
