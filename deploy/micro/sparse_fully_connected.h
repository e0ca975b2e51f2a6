// tfimp's sparse int8 FULLY_CONNECTED kernel for TensorFlow Lite Micro (custom op
// TFIMP_SPARSE_FC). Register it with
//   resolver.AddCustom(tfimp::kSparseFullyConnected, tfimp::Register_SPARSE_FULLY_CONNECTED());
// Weights stay in flash in a compressed-row format (see sparse_fully_connected.cc); outputs
// equal TFLite Micro's reference int8 FULLY_CONNECTED bit for bit.
#pragma once

#include "tensorflow/lite/micro/micro_common.h"

namespace tfimp {

constexpr char kSparseFullyConnected[] = "TFIMP_SPARSE_FC";

const TFLMRegistration* Register_SPARSE_FULLY_CONNECTED();

}  // namespace tfimp
