/* Allocation failures on demand for the buffer tests: the test is linked
 * with -Wl,--wrap for malloc, calloc and realloc (tests/unit/meson.build),
 * so every call from the library under test comes here first. */
#ifndef WEFT_TESTS_FAIL_ALLOC_H
#define WEFT_TESTS_FAIL_ALLOC_H

#include <stddef.h>

static int fail_allocs; /* how many of the next allocations fail */
static int fail_skip;   /* allocations that succeed before those */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

/* The next allocation after skip successful ones fails, and n - 1 after it. */
static inline void fail_next(int skip, int n)
{
    fail_skip = skip;
    fail_allocs = n;
}

static int should_fail(void)
{
    if (fail_allocs == 0)
        return 0;
    if (fail_skip > 0) {
        fail_skip--;
        return 0;
    }
    fail_allocs--;
    return 1;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : __real_realloc(p, n);
}

#endif
