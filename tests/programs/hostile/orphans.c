/* orphans MS: forks three workers that each burn MS milliseconds of CPU,
 * say so through a pipe and then pause forever; the parent exits as soon
 * as all three are done burning, leaving them behind. Their CPU time is
 * never waited for by the program itself. */
#include "hostile.h"
#include <time.h>

static double cpu_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return now.tv_sec * 1e3 + now.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    long ms = argc > 1 ? atol(argv[1]) : 600;
    int done[2];
    int got = 0;
    char byte;

    if (pipe(done) != 0)
        return 2;
    for (int i = 0; i < 3; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 2;
        if (pid == 0) {
            volatile unsigned long spin = 0;
            close(done[0]);
            while (cpu_ms() < ms)
                spin++;
            if (write(done[1], "x", 1) != 1)
                _exit(2);
            for (;;)
                pause();
        }
    }
    close(done[1]);
    while (got < 3 && read(done[0], &byte, 1) == 1)
        got++;
    printf("workers done: %d\n", got);
    return 0;
}
