// Wide vectors for hot loops in a build that targets plain x86-64 (internal, not installed).
#pragma once

// The function is compiled also for AVX2 and AVX-512, and the version for this CPU is
// picked at load time (GCC's target_clones). Lambdas inside it do not get the clones:
// keep the hot loops in the function's own body.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FLOWGRAD_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FLOWGRAD_SIMD_CLONES
#endif

// Before a loop whose outputs never alias its inputs, where GCC cannot prove it (many
// pointers into separate buffers) and would otherwise leave the loop scalar.
#if defined(__GNUC__) && !defined(__clang__)
#define FLOWGRAD_IVDEP _Pragma("GCC ivdep")
#else
#define FLOWGRAD_IVDEP
#endif
