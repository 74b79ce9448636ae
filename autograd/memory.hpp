// Memory policy for training loops.
#pragma once

namespace flowgrad {

// Asks glibc's malloc to keep freed memory for reuse instead of handing it back to the
// kernel. A training step frees and re-allocates the same activation sizes every step;
// returned memory costs a page fault per 4 KiB when it is touched again (measured: ~15%
// of a Glow bench step, almost all of it kernel time). Peak RSS is unchanged: the memory
// kept is the memory the previous step already used. A program calls this once, before
// training; it is not done behind the host program's back. Returns false where it is not
// supported (non-glibc).
bool retain_freed_memory();

}  // namespace flowgrad
