/* spin_cpu SECONDS: busy-loop until this process has used SECONDS of CPU
 * time by its own clock (CLOCK_PROCESS_CPUTIME_ID), then exit 0.
 * With a huge SECONDS it spins until the sandbox kills it. */
#include <stdlib.h>
#include <time.h>

static double process_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double target = argc > 1 ? atof(argv[1]) : 0.5;
    volatile unsigned long sink = 0;

    while (process_cpu_seconds() < target)
        for (int i = 0; i < 10000; i++)
            sink += (unsigned long)i;
    return 0;
}
