# cmake -DINPUT_DIR=dir -DOUTPUT=file.cc -P embed_assets.cmake
# Writes OUTPUT defining kg::api::internal::kConsoleAssets: every file of INPUT_DIR (the console
# that web/build.sh produced) as bytes, with its name and content type. Bytes as numbers, so any
# file comes through exactly.
cmake_minimum_required(VERSION 3.22)
file(GLOB files RELATIVE "${INPUT_DIR}" "${INPUT_DIR}/*")
list(SORT files)
set(arrays "")
set(table "")
set(i 0)
foreach(name IN LISTS files)
  if(IS_DIRECTORY "${INPUT_DIR}/${name}")
    continue()
  endif()
  if(name MATCHES "\\.html$")
    set(type "text/html; charset=utf-8")
  elseif(name MATCHES "\\.js$")
    set(type "text/javascript; charset=utf-8")
  elseif(name MATCHES "\\.css$")
    set(type "text/css; charset=utf-8")
  else()
    message(FATAL_ERROR "embed_assets: no content type for ${name}")
  endif()
  file(READ "${INPUT_DIR}/${name}" hex HEX)
  file(SHA256 "${INPUT_DIR}/${name}" digest)
  string(SUBSTRING "${digest}" 0 20 digest)
  string(REGEX REPLACE "(..)" "0x\\1," bytes "${hex}")
  string(APPEND arrays "const unsigned char a${i}[] = {${bytes}};\n")
  string(APPEND table "    {\"${name}\", \"${type}\", \"\\\"${digest}\\\"\", a${i}, sizeof(a${i})},\n")
  math(EXPR i "${i} + 1")
endforeach()
if(i EQUAL 0)
  message(FATAL_ERROR "embed_assets: ${INPUT_DIR} is empty (web/build.sh failed?)")
endif()
file(WRITE "${OUTPUT}.tmp"
  "// Generated from the console's assets by embed_assets.cmake; do not edit.\n"
  "#include \"api/console_assets.h\"\n"
  "namespace kg::api::internal {\n"
  "namespace {\n${arrays}}  // namespace\n"
  "const ConsoleAsset kConsoleAssets[] = {\n${table}};\n"
  "const std::size_t kConsoleAssetCount = ${i};\n"
  "}  // namespace kg::api::internal\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
