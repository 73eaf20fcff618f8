add_library(orchard_handlers STATIC
  ${CMAKE_CURRENT_LIST_DIR}/handlers/builtin.cc
  ${CMAKE_CURRENT_LIST_DIR}/handlers/subprocess.cc
  ${CMAKE_CURRENT_LIST_DIR}/handlers/exec.cc
  ${CMAKE_CURRENT_LIST_DIR}/handlers/number.cc
  ${CMAKE_CURRENT_LIST_DIR}/handlers/csv_reader.cc
  ${CMAKE_CURRENT_LIST_DIR}/handlers/csv_aggregate.cc)
target_link_libraries(orchard_handlers PUBLIC orchard_common nlohmann_json::nlohmann_json)

add_library(orchard_worker_lib STATIC
  ${CMAKE_CURRENT_LIST_DIR}/rpc.cc
  ${CMAKE_CURRENT_LIST_DIR}/decide.cc
  ${CMAKE_CURRENT_LIST_DIR}/daemon.cc)
target_link_libraries(orchard_worker_lib PUBLIC orchard_handlers orchard_common orchard_proto
  Boost::headers gRPC::grpc++)

add_executable(orchard-worker ${CMAKE_CURRENT_LIST_DIR}/main.cc)
if(ORCHARD_JEMALLOC)
  target_link_libraries(orchard-worker PRIVATE orchard_jemalloc)
endif()
target_link_libraries(orchard-worker PRIVATE orchard_worker_lib CLI11::CLI11 orchard_version)
