// Linux hands out the AMX tile state (XTILEDATA, 8 KB per thread) only to processes that ask:
// before the first tile instruction, arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); a
// tile instruction without it dies with SIGILL. The request is process-wide and sticky, so it
// is made once, on first use, by whichever thread gets there first.
#pragma once

#include <string>

namespace lowbit {

struct AmxPermission {
  bool granted = false;
  std::string reason;  // why not, when !granted (the kernel's answer, with errno's text)
};

// Asks once per process (thread-safe; later calls return the first answer). Generators that
// emit tile instructions call it in is_valid, so that no tile kernel is built without it.
const AmxPermission& request_amx_permission();

}  // namespace lowbit
