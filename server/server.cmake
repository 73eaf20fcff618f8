add_library(orchard_server_lib STATIC
  ${CMAKE_CURRENT_LIST_DIR}/validate.cc
  ${CMAKE_CURRENT_LIST_DIR}/hub.cc
  ${CMAKE_CURRENT_LIST_DIR}/janitor.cc
  ${CMAKE_CURRENT_LIST_DIR}/service.cc
  ${CMAKE_CURRENT_LIST_DIR}/submit_batch.cc
  ${CMAKE_CURRENT_LIST_DIR}/sweeper.cc
  ${CMAKE_CURRENT_LIST_DIR}/waiting.cc
  ${CMAKE_CURRENT_LIST_DIR}/worker_names.cc)
target_link_libraries(orchard_server_lib PUBLIC orchard_store orchard_common orchard_proto
  Boost::headers gRPC::grpc++)
target_link_libraries(orchard_server_lib PRIVATE orchard_version)
include(${CMAKE_CURRENT_LIST_DIR}/http/http.cmake)
add_executable(orchard-server ${CMAKE_CURRENT_LIST_DIR}/main.cc)
if(ORCHARD_JEMALLOC)
  target_link_libraries(orchard-server PRIVATE orchard_jemalloc)
endif()
target_link_libraries(orchard-server PRIVATE orchard_server_lib orchard_server_ops
  gRPC::grpc++_reflection CLI11::CLI11 orchard_version)

# orchard-check: the invariant checker's command line (server/store/invariants.h).
add_executable(orchard-check ${CMAKE_CURRENT_LIST_DIR}/tools/orchard_check.cc)
target_link_libraries(orchard-check PRIVATE orchard_invariants CLI11::CLI11 orchard_version)
