#pragma once
// Lock annotations. Checked by clang's -Wthread-safety; documentation under g++.
#if defined(__clang__)
#define KG_GUARDED_BY(x) __attribute__((guarded_by(x)))
#define KG_REQUIRES(x) __attribute__((requires_capability(x)))
#else
#define KG_GUARDED_BY(x)
#define KG_REQUIRES(x)
#endif
