// Bit-exact conversions between float and the 16-bit float formats, round to nearest even.
// Scalar and portable: used by the quantizer, the packers, the reference and tests (never
// on a kernel's hot path).
#pragma once

#include <cstdint>

#include "lowbit/descriptor.h"

namespace lowbit {

uint16_t float_to_bf16(float value);
float bf16_to_float(uint16_t bits);
uint16_t float_to_fp16(float value);  // overflow gives +-inf, as IEEE conversion does
float fp16_to_float(uint16_t bits);

inline int dtype_bytes(DType dtype) { return dtype == DType::fp32 ? 4 : 2; }

// Reads element i of a buffer of the given dtype as float / writes it (rounding).
float load_as_float(const void* data, DType dtype, int64_t index);
void store_from_float(void* data, DType dtype, int64_t index, float value);

}  // namespace lowbit
