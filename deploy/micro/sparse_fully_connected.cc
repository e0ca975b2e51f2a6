// tfimp's sparse int8 FULLY_CONNECTED kernel; written by tfimp with the model that uses it.
//
// Inputs: int8 activations, the weights as one uint8 tensor (below), an optional int32 bias.
// Output: int8. The arithmetic is TFLite Micro's reference int8 FULLY_CONNECTED: the same
// QuantizeMultiplier and MultiplyByQuantizedMultiplier, zero points and activation clamp, so
// the outputs are bit-exact with the dense op; only the zero weights are skipped.
//
// Weight tensor layout (little-endian, 16-byte aligned):
//   header (24 bytes): "TSFC", version 1, index bytes (1|2), fused activation (schema code
//     0 none, 1 relu, 2 relu_n1_to_1, 3 relu6), flags; uint32 rows, columns, non-zeros,
//     scales (1 = per-tensor, or one per row)
//   float32 scales[scales]; uint16 count[rows] (non-zeros per row);
//   uint8|uint16 column[non-zeros]; int8 value[non-zeros] (row after row).
#include "sparse_fully_connected.h"

#include <cstdint>
#include <cstring>

#include "tensorflow/lite/c/builtin_op_data.h"
#include "tensorflow/lite/kernels/internal/common.h"
#include "tensorflow/lite/kernels/internal/quantization_util.h"
#include "tensorflow/lite/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"

namespace tfimp {
namespace {

constexpr int kHeaderBytes = 24;
constexpr uint8_t kVersion = 1;

struct Header {
  uint8_t index_bytes;
  uint8_t activation;
  uint32_t rows;
  uint32_t columns;
  uint32_t nnz;
  uint32_t scales;
};

struct OpData {
  Header header;
  int32_t input_offset;
  int32_t output_offset;
  int32_t activation_min;
  int32_t activation_max;
  int32_t* multiplier;  // per row, or one
  int32_t* shift;
};

uint32_t ReadU32(const uint8_t* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

bool ReadHeader(const uint8_t* blob, size_t bytes, Header* h) {
  if (bytes < kHeaderBytes || std::memcmp(blob, "TSFC", 4) != 0 || blob[4] != kVersion) {
    return false;
  }
  h->index_bytes = blob[5];
  h->activation = blob[6];
  h->rows = ReadU32(blob + 8);
  h->columns = ReadU32(blob + 12);
  h->nnz = ReadU32(blob + 16);
  h->scales = ReadU32(blob + 20);
  const size_t want = kHeaderBytes + 4 * h->scales + 2 * h->rows +
                      static_cast<size_t>(h->nnz) * (h->index_bytes + 1);
  return (h->index_bytes == 1 || h->index_bytes == 2) && h->activation <= 3 &&
         (h->scales == 1 || h->scales == h->rows) && bytes == want;
}

// Every row count adds up to the non-zeros and every column is inside the input, so that
// Eval reads only inside the tensors.
template <typename Index>
bool IndicesInRange(const uint8_t* blob, const Header& h) {
  const uint8_t* counts_at = blob + kHeaderBytes + 4 * h.scales;
  uint32_t total = 0;
  for (uint32_t r = 0; r < h.rows; ++r) {
    uint16_t count;
    std::memcpy(&count, counts_at + 2 * r, sizeof(count));
    total += count;
  }
  const auto* columns = reinterpret_cast<const Index*>(counts_at + 2 * h.rows);
  for (uint32_t k = 0; k < h.nnz; ++k) {
    if (columns[k] >= h.columns) return false;
  }
  return total == h.nnz;
}

void* Init(TfLiteContext* context, const char*, size_t) {
  return context->AllocatePersistentBuffer(context, sizeof(OpData));
}

// The multipliers as TFLite Micro's FULLY_CONNECTED Prepare computes them: per-tensor scales
// multiply in float, per-channel ones in double.
void ComputeMultipliers(const uint8_t* blob, float input_scale, float output_scale,
                        OpData* data) {
  for (uint32_t i = 0; i < data->header.scales; ++i) {
    float scale;
    std::memcpy(&scale, blob + kHeaderBytes + 4 * i, sizeof(scale));
    const double real =
        data->header.scales == 1
            ? static_cast<double>(input_scale * scale) / static_cast<double>(output_scale)
            : static_cast<double>(input_scale) * static_cast<double>(scale) /
                  static_cast<double>(output_scale);
    int shift;
    tflite::QuantizeMultiplier(real, &data->multiplier[i], &shift);
    data->shift[i] = shift;
  }
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  auto* data = static_cast<OpData*>(node->user_data);
  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TfLiteTensor* input = micro_context->AllocateTempInputTensor(node, 0);
  TfLiteTensor* weights = micro_context->AllocateTempInputTensor(node, 1);
  TfLiteTensor* output = micro_context->AllocateTempOutputTensor(node, 0);
  TF_LITE_ENSURE(context, input != nullptr && weights != nullptr && output != nullptr);
  TF_LITE_ENSURE_TYPES_EQ(context, input->type, kTfLiteInt8);
  TF_LITE_ENSURE_TYPES_EQ(context, output->type, kTfLiteInt8);
  TF_LITE_ENSURE_TYPES_EQ(context, weights->type, kTfLiteUInt8);
  const uint8_t* blob = weights->data.uint8;
  if (blob == nullptr || !ReadHeader(blob, weights->bytes, &data->header)) {
    MicroPrintf("TFIMP_SPARSE_FC: the weight tensor is not in tfimp's sparse format v1.");
    return kTfLiteError;
  }
  const Header& h = data->header;
  TF_LITE_ENSURE(context, h.rows > 0 && h.columns > 0);
  TF_LITE_ENSURE(context, h.index_bytes == 1 ? IndicesInRange<uint8_t>(blob, h)
                                             : IndicesInRange<uint16_t>(blob, h));
  TF_LITE_ENSURE_EQ(context, tflite::NumElements(input) % h.columns, 0);
  TF_LITE_ENSURE_EQ(context, tflite::NumElements(output) % h.rows, 0);
  TF_LITE_ENSURE_EQ(context, tflite::NumElements(input) / h.columns,
                    tflite::NumElements(output) / h.rows);
  auto* buffer = static_cast<int32_t*>(
      context->AllocatePersistentBuffer(context, 2 * h.scales * sizeof(int32_t)));
  TF_LITE_ENSURE(context, buffer != nullptr);
  data->multiplier = buffer;
  data->shift = buffer + h.scales;
  ComputeMultipliers(blob, input->params.scale, output->params.scale, data);
  data->input_offset = -input->params.zero_point;
  data->output_offset = output->params.zero_point;
  TF_LITE_ENSURE_STATUS(tflite::CalculateActivationRangeQuantized(
      context, static_cast<TfLiteFusedActivation>(h.activation), output,
      &data->activation_min, &data->activation_max));
  micro_context->DeallocateTempTfLiteTensor(input);
  micro_context->DeallocateTempTfLiteTensor(weights);
  micro_context->DeallocateTempTfLiteTensor(output);
  return kTfLiteOk;
}

// One row: the non-zeros times their inputs, as the reference kernel sums them (int32).
template <typename Index>
inline int32_t RowSum(const Index* column, const int8_t* value, int count, const int8_t* x,
                      int32_t input_offset) {
  int32_t acc = 0;
  for (int k = 0; k < count; ++k) {
    acc += value[k] * (x[column[k]] + input_offset);
  }
  return acc;
}

template <typename Index>
void Run(const OpData& data, const uint8_t* blob, const int8_t* input, const int32_t* bias,
         int batches, int8_t* output) {
  const Header& h = data.header;
  const uint8_t* counts_at = blob + kHeaderBytes + 4 * h.scales;
  const auto* counts = reinterpret_cast<const uint16_t*>(counts_at);
  const auto* columns = reinterpret_cast<const Index*>(counts_at + 2 * h.rows);
  const auto* values = reinterpret_cast<const int8_t*>(counts_at + 2 * h.rows) +
                       static_cast<size_t>(h.nnz) * sizeof(Index);
  const bool per_row = h.scales != 1;
  for (int b = 0; b < batches; ++b) {
    const int8_t* x = input + static_cast<size_t>(b) * h.columns;
    const Index* column = columns;
    const int8_t* value = values;
    for (uint32_t r = 0; r < h.rows; ++r) {
      const int count = counts[r];
      int32_t acc = RowSum(column, value, count, x, data.input_offset);
      column += count;
      value += count;
      if (bias != nullptr) acc += bias[r];
      const int s = per_row ? r : 0;
      acc = tflite::MultiplyByQuantizedMultiplier(acc, data.multiplier[s], data.shift[s]);
      acc += data.output_offset;
      acc = acc < data.activation_min ? data.activation_min : acc;
      acc = acc > data.activation_max ? data.activation_max : acc;
      output[static_cast<size_t>(b) * h.rows + r] = static_cast<int8_t>(acc);
    }
  }
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  const auto& data = *static_cast<const OpData*>(node->user_data);
  const TfLiteEvalTensor* input = tflite::micro::GetEvalInput(context, node, 0);
  const TfLiteEvalTensor* weights = tflite::micro::GetEvalInput(context, node, 1);
  const TfLiteEvalTensor* bias =
      node->inputs->size > 2 ? tflite::micro::GetEvalInput(context, node, 2) : nullptr;
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, 0);
  const int batches = tflite::micro::GetTensorShape(output).FlatSize() / data.header.rows;
  const uint8_t* blob = tflite::micro::GetTensorData<uint8_t>(weights);
  const int32_t* bias_data = tflite::micro::GetOptionalTensorData<int32_t>(bias);
  if (data.header.index_bytes == 1) {
    Run<uint8_t>(data, blob, tflite::micro::GetTensorData<int8_t>(input), bias_data, batches,
                 tflite::micro::GetTensorData<int8_t>(output));
  } else {
    Run<uint16_t>(data, blob, tflite::micro::GetTensorData<int8_t>(input), bias_data, batches,
                  tflite::micro::GetTensorData<int8_t>(output));
  }
  return kTfLiteOk;
}

}  // namespace

const TFLMRegistration* Register_SPARSE_FULLY_CONNECTED() {
  static const TFLMRegistration registration = tflite::micro::RegisterOp(Init, Prepare, Eval);
  return &registration;
}

}  // namespace tfimp
