// The reference (lowbit/reference.h, reference_matmul) on the GPU, for the tuner: the same
// plain arithmetic in double, so that verifying a candidate of a large shape does not wait
// seconds for the host's oracle. One thread an output y[row][n]:
//   y = sum over k, in k order, of a[row][k] * ((q[n][k] - zero[n][g]) * scale[n][g]),  g = k / group_size
//   then + bias[n]
// with every product and sum rounded on its own (__dmul_rn, __dadd_rn: no fused multiply-add,
// as the host computes them), so each output is the host's sum of the same terms in the same
// order. The host prepares a (x times eq_scale, in double), zero and scale (double, from the
// stored fp16 or the implicit zero point) and bias (double): the format's rules stay in one
// place (core/quantize.cpp).
//   a: [rows][K] double; q: [N][K] one code a byte; zero, scale: [N][groups] double; bias: [N]
//   double or null; y: [rows][N] double. Grid (ceil(N / 128), rows), 128 threads.

extern "C" __global__ void __launch_bounds__(128) lowbit_reference(const double* a, const unsigned char* q,
                                                                   const double* zero, const double* scale,
                                                                   const double* bias, double* y, long long n_size,
                                                                   int k_size, int group_size) {
  const long long n = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= n_size) return;
  const long long row = blockIdx.y;
  const int groups = k_size / group_size;
  const double* a_row = a + row * k_size;
  const unsigned char* q_row = q + n * k_size;
  double sum = 0.0;
  for (int k = 0; k < k_size; ++k) {
    const int g = k / group_size;
    const double weight = __dmul_rn(__dadd_rn(static_cast<double>(q_row[k]), -zero[n * groups + g]), scale[n * groups + g]);
    sum = __dadd_rn(sum, __dmul_rn(a_row[k], weight));
  }
  y[row * n_size + n] = bias != nullptr ? __dadd_rn(sum, bias[n]) : sum;
}
