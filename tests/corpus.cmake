# The ONNX test-model builder (tests/onnx_builder.h) with the ONNX part of the hostile
# corpus, and make_corpus, which writes the whole corpus. Included by tests/ and by fuzz/
# (a fuzz build has no tests, but make_corpus writes its seeds).
if(NOT TARGET bdguard_onnx_testing)
  # onnx (not only onnx_proto): tests may run Debian's checker on models they built
  # themselves, never on untrusted files.
  add_library(bdguard_onnx_testing STATIC ${PROJECT_SOURCE_DIR}/tests/onnx_builder.cpp
    ${PROJECT_SOURCE_DIR}/tests/hostile/onnx_corpus.cpp)
  target_include_directories(bdguard_onnx_testing PUBLIC ${PROJECT_SOURCE_DIR}/src
    ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(bdguard_onnx_testing PUBLIC bdguard onnx onnx_proto)
  target_compile_options(bdguard_onnx_testing PRIVATE ${BDGUARD_WARNINGS})
  bdguard_use_pch(bdguard_onnx_testing)
endif()
if(NOT TARGET make_corpus)
  add_executable(make_corpus ${PROJECT_SOURCE_DIR}/tests/hostile/make_corpus.cpp)
  target_link_libraries(make_corpus PRIVATE bdguard bdguard_onnx_testing ${HDF5_C_LIBRARIES}
    ZLIB::ZLIB)
  target_include_directories(make_corpus PRIVATE ${PROJECT_SOURCE_DIR}/src ${HDF5_C_INCLUDE_DIRS})
  target_compile_options(make_corpus PRIVATE ${BDGUARD_WARNINGS})
  bdguard_use_pch(make_corpus)
endif()
