# Adds the model runner to a CMake project that has TFLite Micro built:
#   set(TFLM_DIR /path/to/tflite-micro)
#   set(TFLM_LIB ${TFLM_DIR}/gen/<target>/lib/libtensorflow-microlite.a)
#   include(path/to/this/bundle/tflm.cmake)
#
# {{decode_note}}
# TFIMP_TFLM_COMPRESSION compiles the runner with TFLite Micro's separate compressed-tensor
# option ({{compression_define}}); only for a TFLM_LIB built with it ({{compression_make}}).
option(TFIMP_TFLM_COMPRESSION "Compile with TFLite Micro's {{compression_define}}" {{tflm_compression_cmake}})
set(TFLM_DOWNLOADS ${TFLM_DIR}/tensorflow/lite/micro/tools/make/downloads)
add_executable(model_runner
  ${CMAKE_CURRENT_LIST_DIR}/main.cc
  ${CMAKE_CURRENT_LIST_DIR}/model_data.cc)
if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/sparse_fully_connected.cc)  # tfimp's sparse kernel
  target_sources(model_runner PRIVATE ${CMAKE_CURRENT_LIST_DIR}/sparse_fully_connected.cc)
endif()
target_compile_features(model_runner PRIVATE cxx_std_17)
target_compile_definitions(model_runner PRIVATE TF_LITE_STATIC_MEMORY)
if(TFIMP_TFLM_COMPRESSION)
  target_compile_definitions(model_runner PRIVATE {{compression_define}})
endif()
target_compile_options(model_runner PRIVATE -fno-rtti -fno-exceptions -fno-threadsafe-statics)
target_include_directories(model_runner PRIVATE
  ${CMAKE_CURRENT_LIST_DIR} ${TFLM_DIR}
  ${TFLM_DOWNLOADS}/flatbuffers/include ${TFLM_DOWNLOADS}/gemmlowp ${TFLM_DOWNLOADS}/ruy)
target_link_libraries(model_runner PRIVATE ${TFLM_LIB})
