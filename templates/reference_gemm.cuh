// The reference (lowbit/reference.h, reference_matmul) on the GPU, for the tuner: the same
// plain arithmetic in double, so that verifying a candidate of a large shape does not wait
// seconds for the host's oracle. Each output
//   y[row][n] = sum over k, in k order, of a[row][k] * ((q[n][k] - zero[n][g]) * scale[n][g]),  g = k / group_size
//   then + bias[n]
// rounds every product and sum on its own (__dmul_rn, __dadd_rn: no fused multiply-add, as the
// host computes them), so it is the host's sum of the same terms in the same order. The host
// prepares a (x times eq_scale, in double), zero and scale (double, from the stored fp16 or the
// implicit zero point) and bias (double): the format's rules stay in one place (core/quantize.cpp).
//   a: [rows][K] double; q: [N][K] one code a byte; zero, scale: [N][groups] double; bias: [N]
//   double or null; y: [rows][N] double. Grid (ceil(N / 128), ceil(rows / REFERENCE_ROWS)), 128
//   threads: a thread takes one n and REFERENCE_ROWS rows, so each weight it dequantizes serves
//   them all, and reads its codes 16 at a time (a byte a k, one thread a row of q, would fetch
//   each 32-byte sector once per k: L1 cannot hold a block's rows between them).

#ifndef REFERENCE_ROWS
#error "the instantiation defines REFERENCE_ROWS (tuner/device_reference.cpp, reference_program_source)"
#endif

extern "C" __global__ void __launch_bounds__(128) lowbit_reference(const double* a, const unsigned char* q,
                                                                   const double* zero, const double* scale,
                                                                   const double* bias, double* y, long long n_size,
                                                                   int k_size, int group_size, int rows) {
  const long long n = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= n_size) return;
  const int first_row = blockIdx.y * REFERENCE_ROWS;
  const int groups = k_size / group_size;
  const unsigned char* q_row = q + n * k_size;
  // Rows past the last are computed on the last row's activations and never stored.
  const double* a_rows[REFERENCE_ROWS];
  double sums[REFERENCE_ROWS];
#pragma unroll
  for (int r = 0; r < REFERENCE_ROWS; ++r) {
    a_rows[r] = a + static_cast<long long>(min(first_row + r, rows - 1)) * k_size;
    sums[r] = 0.0;
  }
  for (int k0 = 0; k0 < k_size; k0 += 16) {
    unsigned char codes[16];
    if (k_size % 16 == 0) {
      *reinterpret_cast<uint4*>(codes) = *reinterpret_cast<const uint4*>(q_row + k0);
    } else {
      for (int i = 0; i < 16; ++i) codes[i] = k0 + i < k_size ? q_row[k0 + i] : 0;
    }
    const int steps = min(16, k_size - k0);
    for (int i = 0; i < steps; ++i) {
      const int k = k0 + i;
      const int g = k / group_size;
      const double weight =
          __dmul_rn(__dadd_rn(static_cast<double>(codes[i]), -zero[n * groups + g]), scale[n * groups + g]);
#pragma unroll
      for (int r = 0; r < REFERENCE_ROWS; ++r) sums[r] = __dadd_rn(sums[r], __dmul_rn(a_rows[r][k], weight));
    }
  }
#pragma unroll
  for (int r = 0; r < REFERENCE_ROWS; ++r)
    if (first_row + r < rows)
      y[static_cast<long long>(first_row + r) * n_size + n] = bias != nullptr ? __dadd_rn(sums[r], bias[n]) : sums[r];
}
