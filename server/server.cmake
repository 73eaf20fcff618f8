add_library(orchard_server_lib STATIC
  ${CMAKE_CURRENT_LIST_DIR}/validate.cc
  ${CMAKE_CURRENT_LIST_DIR}/hub.cc
  ${CMAKE_CURRENT_LIST_DIR}/service.cc
  ${CMAKE_CURRENT_LIST_DIR}/sweeper.cc)
target_link_libraries(orchard_server_lib PUBLIC orchard_store orchard_common orchard_proto
  Boost::headers gRPC::grpc++)
add_executable(orchard-server ${CMAKE_CURRENT_LIST_DIR}/main.cc)
target_link_libraries(orchard-server PRIVATE orchard_server_lib gRPC::grpc++_reflection CLI11::CLI11)
