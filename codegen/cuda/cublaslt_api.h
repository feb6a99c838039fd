// cuBLASLt, opened at run time with dlopen like the driver and NVRTC (cuda_api.h): only the
// types come from the toolkit's cublasLt.h; no CUDA library is linked. Used by the
// dequantize-then-GEMM fallback (dequant_gemm_kernel.h).
#pragma once

#include <cublasLt.h>

#include <string>

namespace lowbit::cuda {

struct CublasLt {
  bool available = false;
  std::string reason;   // why not available
  std::string library;  // the file that was opened
#define LOWBIT_CUBLASLT_FUNCTIONS(X)                                                                   \
  X(cublasLtCreate) X(cublasLtDestroy) X(cublasLtGetVersion) X(cublasLtGetStatusString)              \
  X(cublasLtMatmulDescCreate) X(cublasLtMatmulDescDestroy) X(cublasLtMatmulDescSetAttribute)          \
  X(cublasLtMatrixLayoutCreate) X(cublasLtMatrixLayoutDestroy) X(cublasLtMatmulPreferenceCreate)      \
  X(cublasLtMatmulPreferenceDestroy) X(cublasLtMatmulPreferenceSetAttribute)                          \
  X(cublasLtMatmulAlgoGetHeuristic) X(cublasLtMatmul)
#define LOWBIT_DECLARE(name) decltype(&::name) name = nullptr;
  LOWBIT_CUBLASLT_FUNCTIONS(LOWBIT_DECLARE)
#undef LOWBIT_DECLARE
};

// Opened once per process; never throws. $LOWBIT_CUBLASLT names the file to open instead of
// the sonames of CUDA 13 and 12 (e.g. a pip wheel's nvidia/cublas/lib/libcublasLt.so.12).
const CublasLt& cublaslt();

// "13.1.0" style version of the opened library, or "none".
std::string cublaslt_version();

// Throws lowbit::Error with cuBLASLt's status name when status is not CUBLAS_STATUS_SUCCESS.
void check(cublasStatus_t status, const char* what);

}  // namespace lowbit::cuda
