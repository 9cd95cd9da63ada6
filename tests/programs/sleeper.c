/* sleeper COUNT MS: print "sleeping", then sleep MS milliseconds COUNT
 * times (forever when COUNT is negative) and exit 0. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    long count = argc > 1 ? atol(argv[1]) : -1;
    long ms = argc > 2 ? atol(argv[2]) : 1000;
    struct timespec nap = { ms / 1000, (ms % 1000) * 1000000L };

    printf("sleeping\n");
    fflush(stdout);
    for (long i = 0; count < 0 || i < count; i++)
        nanosleep(&nap, NULL);
    return 0;
}
