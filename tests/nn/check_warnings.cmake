# cmake -P check_warnings.cmake -- runs the C++ compiler on warning_survives.cpp and checks that
# the runtime's headers leave the includer's warnings alone: the file's own uninitialised read
# warns, and nothing inside Eigen or the runtime does.
# Variables: CXX, SOURCE, FLAGS (compile flags separated by |).
string(REPLACE "|" ";" FLAGS "${FLAGS}")
execute_process(COMMAND ${CXX} ${FLAGS} -c ${SOURCE} -o /dev/null
                RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
if(NOT code EQUAL 0)
  message(FATAL_ERROR "compile failed:\n${all}")
endif()
if(NOT all MATCHES "warning_survives.cpp:[0-9]+:[0-9]+: warning: [^\n]*never_set[^\n]* is used uninitialized")
  message(FATAL_ERROR "the includer's own -Wuninitialized warning was silenced:\n${all}")
endif()
string(REGEX MATCHALL "[^\n]*warning:[^\n]*" warnings "${all}")
foreach(w IN LISTS warnings)
  if(NOT w MATCHES "never_set")
    message(FATAL_ERROR "unexpected warning: ${w}\n${all}")
  endif()
endforeach()
message(STATUS "ok: the includer's warning survives; none from Eigen or the runtime")
