#include "core/amx_permission.h"

#include <fmt/format.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace lowbit {
namespace {

// From the kernel's arch/x86/include/uapi/asm/prctl.h (glibc exports no names for them) and
// the XSAVE component number of the tile data (Intel SDM vol. 1, 13.1).
constexpr int arch_get_xcomp_perm = 0x1022;
constexpr int arch_req_xcomp_perm = 0x1023;
constexpr int xfeature_xtiledata = 18;

AmxPermission ask() {
  if (syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) != 0) {
    const int error = errno;
    return {false, fmt::format("arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) failed: {} ({}){}", std::strerror(error),
                               error,
                               error == EINVAL ? "; the kernel (Linux >= 5.16 needed) or the hypervisor does not "
                                                 "enable AMX tile state"
                                               : "")};
  }
  // The request can succeed without granting (a seccomp filter, an old kernel answering 0 for
  // an unknown code): only the permitted mask proves it.
  unsigned long permitted = 0;
  if (syscall(SYS_arch_prctl, arch_get_xcomp_perm, &permitted) != 0) {
    const int error = errno;
    return {false, fmt::format("arch_prctl(ARCH_GET_XCOMP_PERM) failed: {} ({})", std::strerror(error), error)};
  }
  if ((permitted & (1ul << xfeature_xtiledata)) == 0)
    return {false, fmt::format("arch_prctl granted no AMX tile state (permitted XSAVE features 0x{:x}, bit {} unset)",
                               permitted, xfeature_xtiledata)};
  return {true, {}};
}

}  // namespace

const AmxPermission& request_amx_permission() {
  static const AmxPermission permission = ask();  // C++ guarantees one thread-safe initialisation
  return permission;
}

}  // namespace lowbit
