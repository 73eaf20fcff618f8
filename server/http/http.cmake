# The server's operators' view: metrics, the RPC interceptor, the commit
# reporter (transition logs and counts) and the HTTP listener with the JSON
# API and the embedded dashboard. Included from server/server.cmake.
set(ORCHARD_ASSETS
  ${CMAKE_CURRENT_LIST_DIR}/assets/index.html
  ${CMAKE_CURRENT_LIST_DIR}/assets/app.css
  ${CMAKE_CURRENT_LIST_DIR}/assets/app.js
  ${CMAKE_CURRENT_LIST_DIR}/assets/favicon.svg
)
set(ORCHARD_ASSETS_CC ${CMAKE_CURRENT_BINARY_DIR}/http/assets_data.cc)
add_custom_command(
  OUTPUT ${ORCHARD_ASSETS_CC}
  COMMAND ${CMAKE_COMMAND} -DOUT=${ORCHARD_ASSETS_CC} "-DFILES=${ORCHARD_ASSETS}"
          -P ${CMAKE_CURRENT_LIST_DIR}/embed_assets.cmake
  DEPENDS ${ORCHARD_ASSETS} ${CMAKE_CURRENT_LIST_DIR}/embed_assets.cmake
  COMMENT "Embedding the dashboard's assets"
  VERBATIM)

add_library(orchard_server_ops STATIC
  ${CMAKE_CURRENT_LIST_DIR}/../metrics.cc
  ${CMAKE_CURRENT_LIST_DIR}/../interceptor.cc
  ${CMAKE_CURRENT_LIST_DIR}/../commit_reporter.cc
  ${CMAKE_CURRENT_LIST_DIR}/http_types.cc
  ${CMAKE_CURRENT_LIST_DIR}/http_server.cc
  ${CMAKE_CURRENT_LIST_DIR}/api.cc
  ${CMAKE_CURRENT_LIST_DIR}/router.cc
  ${ORCHARD_ASSETS_CC}
)
# orchard_cli_lib brings cli/format.cc: the API's JSON is orchardctl's -o json.
target_link_libraries(orchard_server_ops PUBLIC orchard_server_lib orchard_cli_lib
  Boost::headers gRPC::grpc++ nlohmann_json::nlohmann_json fmt::fmt)
