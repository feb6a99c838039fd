// How the CUDA generators spell descriptor enums in a template's Config: the values of the
// templates' own enums (templates/gemv.cuh: `enum DType { fp32 = 0, bf16 = 1, fp16 = 2 }`,
// `enum Zero { zero_none = 0, zero_int = 1, zero_float = 2 }`), which every template shares.
#pragma once

#include "lowbit/descriptor.h"

namespace lowbit::cuda {

inline int template_dtype(DType dtype) {
  switch (dtype) {
    case DType::fp32: return 0;
    case DType::bf16: return 1;
    case DType::fp16: return 2;
  }
  return -1;
}

inline int template_zero(ZeroPoint zero) {
  switch (zero) {
    case ZeroPoint::none: return 0;
    case ZeroPoint::integer: return 1;
    case ZeroPoint::floating: return 2;
  }
  return -1;
}

}  // namespace lowbit::cuda
