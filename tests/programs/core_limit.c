/* core_limit: print "core SOFT HARD" (RLIMIT_CORE; -1 for unlimited), then
 * abort(), which would dump core if core dumps were on. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static long long show(rlim_t value)
{
    return value == RLIM_INFINITY ? -1 : (long long)value;
}

int main(void)
{
    struct rlimit limit;

    if (getrlimit(RLIMIT_CORE, &limit) != 0)
        return 2;
    printf("core %lld %lld\n", show(limit.rlim_cur), show(limit.rlim_max));
    fflush(stdout);
    abort();
}
