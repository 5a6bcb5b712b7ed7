/* weft-edge's heap (docs/performance.md, "Data plane"): what a small device
 * gets back once circuits close.
 *
 * glibc's malloc raises its mmap threshold each time a mapped block is freed
 * (up to 32 MiB), so after the first circuits close their large buffers come
 * from the heap, where freed blocks stay behind any long-lived one above
 * them. The agent fixes the threshold (which also stops the trim threshold
 * from moving): blocks of EDGE_MMAP_THRESHOLD and more, libweft's grown
 * per-circuit buffers, are mapped and unmapped on their own. Smaller blocks
 * (a conn, a pipe, a buffer of a quiet circuit) stay on the heap; after a
 * batch of circuits closed, malloc_trim hands the free pages in the middle of
 * the heap back too.
 *
 * This is the agent's choice, not libweft's: mallopt is process-wide and an
 * embedding application keeps its own allocator settings. */
#include "edge/agent.h"
#include "proto/log.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

void edge_mem_setup(void)
{
#ifdef __GLIBC__
    if (mallopt(M_MMAP_THRESHOLD, EDGE_MMAP_THRESHOLD) != 1)
        pr_warn("edge_malloc_setup", "mmap_threshold=%d msg=%s", EDGE_MMAP_THRESHOLD,
                pr_log_q("mallopt refused the threshold: memory returns to the system later"));
#endif
}

static void on_trim(uv_timer_t *t)
{
    edge_agent *a = t->data;
    int released = 0;

#ifdef __GLIBC__
    released = malloc_trim(0);
#endif
    pr_debug("edge_heap_trim", "closed=%u released=%d", a->closed, released);
    a->closed = 0;
}

void edge_mem_start(edge_agent *a)
{
    uv_timer_init(a->loop, &a->trim);
    a->trim.data = a;
}

void edge_mem_stop(edge_agent *a)
{
    uv_close((uv_handle_t *)&a->trim, NULL);
}

void edge_mem_closed(edge_agent *a)
{
    a->closed++;
    if (a->stopping || uv_is_active((uv_handle_t *)&a->trim))
        return;
    if (a->closed >= EDGE_TRIM_CLOSES || (a->pipes == NULL && a->flows == NULL))
        uv_timer_start(&a->trim, on_trim, EDGE_TRIM_DELAY_MS, 0);
}
