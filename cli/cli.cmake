# orchardctl: orchard_cli_lib holds everything but main.cc, so that the unit
# tests in tests/cli link the same formatting and parsing code.
add_library(orchard_cli_lib STATIC
  ${CMAKE_CURRENT_LIST_DIR}/args.cc
  ${CMAKE_CURRENT_LIST_DIR}/client.cc
  ${CMAKE_CURRENT_LIST_DIR}/commands.cc
  ${CMAKE_CURRENT_LIST_DIR}/format.cc
  ${CMAKE_CURRENT_LIST_DIR}/watch.cc
)
target_include_directories(orchard_cli_lib PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(orchard_cli_lib PUBLIC orchard_common orchard_proto CLI11::CLI11
  nlohmann_json::nlohmann_json fmt::fmt)

add_executable(orchardctl ${CMAKE_CURRENT_LIST_DIR}/main.cc)
target_link_libraries(orchardctl PRIVATE orchard_cli_lib)
target_link_libraries(orchard_cli_lib PRIVATE orchard_version)
