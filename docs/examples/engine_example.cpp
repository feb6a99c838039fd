// The integration example of docs/integration.md: what a C++ engine does with lowbit.
// Quantize and pack a weight once, resolve a kernel once, run it on the engine's own buffers
// (also from two threads at once), and check the result against lowbit's reference.
// Build and run: see docs/integration.md ("Compile and run the example").
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "lowbit/descriptor.h"
#include "lowbit/errors.h"
#include "lowbit/half.h"
#include "lowbit/kernel.h"
#include "lowbit/native_layout.h"
#include "lowbit/quantize.h"
#include "lowbit/reference.h"

int main() {
  try {
    // 1. Describe the operator once. m=0: one kernel for any number of rows.
    const lowbit::OpDesc desc =
        lowbit::parse_descriptor("m=0,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16");

    // 2. At load time: quantize the float weight [n][k] (torch.nn.Linear.weight's layout) and
    //    pack it into lowbit's native layout. An engine that already holds int4 codes fills a
    //    lowbit::QuantizedWeights itself and calls pack_native on it.
    std::mt19937 generator(42);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> weight(static_cast<std::size_t>(desc.n * desc.k));
    for (float& value : weight) value = normal(generator);
    const lowbit::QuantizedWeights quantized = lowbit::quantize_rtn(desc, weight);
    const lowbit::NativeWeights packed = lowbit::pack_native(desc, quantized);

    // 3. Resolve the kernel: a cache hit builds the stored winner; a miss tunes (about a
    //    second for this shape) and stores it. OnMiss::heuristic would skip the tuning.
    lowbit::GetOptions options;  // cache: $LOWBIT_CACHE, else ~/.cache/lowbit/cache.sqlite
    const lowbit::ResolvedKernel resolved = lowbit::get_kernel(desc, options);
    std::printf("kernel %s (source: %s)\n", resolved.kernel->name().c_str(),
                std::string(lowbit::to_string(resolved.source)).c_str());

    // 4. Run on the engine's buffers: x [m][k] and y [m][n], bf16, rows contiguous.
    const int64_t m = 4;
    std::vector<uint16_t> x(static_cast<std::size_t>(m * desc.k));
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (uint16_t& value : x) value = lowbit::float_to_bf16(uniform(generator));
    std::vector<uint16_t> y(static_cast<std::size_t>(m * desc.n));

    lowbit::RunArgs args;
    args.x = x.data();
    args.weights = lowbit::view(packed);  // or {qweight, scales, zeros} pointers the engine owns
    args.y = y.data();
    args.m = m;
    resolved.kernel->run(args);

    const std::vector<double> reference =
        lowbit::reference_matmul(desc, m, x.data(), quantized, nullptr, nullptr);
    std::printf("relative error vs reference: %.2e\n",
                lowbit::relative_error(y.data(), desc.out, reference));

    // 5. Kernel::run may be called from several threads at once, each with its own output
    //    (the library's thread pool runs one call at a time).
    std::vector<uint16_t> y_other(y.size());
    std::thread other([&] {
      lowbit::RunArgs mine = args;
      mine.y = y_other.data();
      resolved.kernel->run(mine);
    });
    resolved.kernel->run(args);
    other.join();
    std::printf("two threads agree: %s\n", y == y_other ? "yes" : "no");
    return 0;
  } catch (const lowbit::InvalidArgument& error) {  // a wrong descriptor, weight or RunArgs
    std::fprintf(stderr, "invalid (%s): %s\n", error.field().c_str(), error.what());
  } catch (const lowbit::Unsupported& error) {  // valid, but no kernel here serves it
    std::fprintf(stderr, "unsupported: %s\n", error.what());
  } catch (const lowbit::Error& error) {  // e.g. no cache path can be chosen
    std::fprintf(stderr, "lowbit: %s\n", error.what());
  }
  return 1;
}
