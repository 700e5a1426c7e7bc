#pragma once
// Lock annotations, checked by clang's -Wthread-safety (scripts/thread_safety.sh runs it
// in `make test`); no-ops under g++, which builds the product. Annotate with kg::Mutex
// (common/mutex.h): std::mutex carries no capability, so clang cannot check it.
#if defined(__clang__)
#define KG_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define KG_THREAD_ANNOTATION(x)
#endif

#define KG_CAPABILITY(x) KG_THREAD_ANNOTATION(capability(x))
#define KG_SCOPED_CAPABILITY KG_THREAD_ANNOTATION(scoped_lockable)
#define KG_GUARDED_BY(x) KG_THREAD_ANNOTATION(guarded_by(x))
#define KG_PT_GUARDED_BY(x) KG_THREAD_ANNOTATION(pt_guarded_by(x))
#define KG_REQUIRES(...) KG_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define KG_EXCLUDES(...) KG_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define KG_ACQUIRE(...) KG_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define KG_RELEASE(...) KG_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define KG_TRY_ACQUIRE(...) KG_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define KG_RETURN_CAPABILITY(x) KG_THREAD_ANNOTATION(lock_returned(x))
#define KG_NO_THREAD_SAFETY_ANALYSIS KG_THREAD_ANNOTATION(no_thread_safety_analysis)
