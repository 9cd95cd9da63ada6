/* fds: open /dev/null until refused and print "open <n>: <errno>", then try
 * to raise the descriptor limit past its hard limit.
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

#include <fcntl.h>
#include <sys/resource.h>

int main(void)
{
    struct rlimit limit;
    unsigned long count = 0;

    while (open("/dev/null", O_RDONLY) >= 0)
        count++;
    printf("open %lu: %s\n", count, errname(errno));
    fflush(stdout);
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max = limit.rlim_max + 1;
    report("raise RLIMIT_NOFILE", setrlimit(RLIMIT_NOFILE, &limit));
    return 0;
}
