/* review3_verdict: claims a limit verdict without reaching the limit.
 *   xcpu  raises its RLIMIT_CPU soft limit to the hard one (allowed to any
 *         process), then sends itself SIGXCPU: the dead process's limits
 *         then look like the kernel's SIGXCPU at the soft limit.
 *   xfsz  sends itself SIGXFSZ without writing anything.
 * Prints "cpu_rlimit: <soft> <hard>" first in the xcpu mode.
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"
#include <signal.h>
#include <sys/resource.h>

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "xcpu")) {
        struct rlimit limit;
        if (getrlimit(RLIMIT_CPU, &limit) != 0)
            return report("getrlimit", -1), 1;
        printf("cpu_rlimit: %llu %llu\n", (unsigned long long)limit.rlim_cur,
               (unsigned long long)limit.rlim_max);
        fflush(stdout);
        limit.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_CPU, &limit) != 0)
            report("setrlimit", -1);
        raise(SIGXCPU);
    } else if (argc > 1 && !strcmp(argv[1], "xfsz")) {
        raise(SIGXFSZ);
    }
    return 0;
}
