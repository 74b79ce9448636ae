#include "autograd/memory.hpp"

#include <cstdlib>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace flowgrad {

bool retain_freed_memory() {
#if defined(__GLIBC__)
  // Blocks up to 32 MiB (glibc's ceiling for this setting) come from the heap, not from
  // mmap, so freeing them does not unmap them; and the heap top is never trimmed.
  const bool ok = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1;
  return mallopt(M_TRIM_THRESHOLD, -1) == 1 && ok;
#else
  return false;
#endif
}

}  // namespace flowgrad
