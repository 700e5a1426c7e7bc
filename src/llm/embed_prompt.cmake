# cmake -DINPUT=file -DOUTPUT=file.cc -DSYMBOL=name -P embed_prompt.cmake
# Writes OUTPUT defining `const char kg::llm::internal::SYMBOL[]` (the bytes of INPUT, which are
# hashed into the prompt version, so they must come through exactly) and `SYMBOL_size`.
# The text goes in a raw string literal whose delimiter occurs nowhere in it; if file(READ) did not
# give the bytes back unchanged (it drops carriage returns), every byte is written escaped instead.
cmake_minimum_required(VERSION 3.22)
get_filename_component(source_name "${INPUT}" NAME)
file(READ "${INPUT}" hex HEX)
file(READ "${INPUT}" text)
string(LENGTH "${hex}" hex_length)
string(LENGTH "${text}" text_length)
math(EXPR byte_length "${hex_length} / 2")
if(NOT text_length EQUAL byte_length)
  # file(READ) changed the bytes (it drops carriage returns, stops at a NUL): escape every byte.
  string(REGEX REPLACE "(..)" "\\\\x\\1" escaped "${hex}")
  set(literal "\"${escaped}\"")
else()
  set(delim "kgp")
  set(n 0)
  string(FIND "${text}" ")${delim}\"" hit)
  while(NOT hit EQUAL -1)
    math(EXPR n "${n} + 1")
    set(delim "kgp${n}")
    string(FIND "${text}" ")${delim}\"" hit)
  endwhile()
  set(literal "R\"${delim}(${text})${delim}\"")
endif()
file(WRITE "${OUTPUT}.tmp"
  "// Generated from ${source_name} by embed_prompt.cmake; do not edit.\n"
  "#include <cstddef>\n"
  "namespace kg::llm::internal {\n"
  "extern const char ${SYMBOL}[];\n"
  "extern const std::size_t ${SYMBOL}_size;\n"
  "const char ${SYMBOL}[] = ${literal};\n"
  "const std::size_t ${SYMBOL}_size = sizeof(${SYMBOL}) - 1;\n"
  "}  // namespace kg::llm::internal\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
