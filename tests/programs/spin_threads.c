/* spin_threads THREADS SECONDS: start THREADS threads that each busy-loop
 * until their own thread CPU clock (CLOCK_THREAD_CPUTIME_ID) reaches
 * SECONDS; the main thread only waits. Exit 0, or 1 if a thread cannot be
 * created. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds_each;

static void *spin(void *unused)
{
    volatile unsigned long sink = 0;
    struct timespec ts;

    (void)unused;
    for (;;) {
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        if ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 >= seconds_each)
            return NULL;
        for (int i = 0; i < 10000; i++)
            sink += (unsigned long)i;
    }
}

int main(int argc, char **argv)
{
    int count = argc > 1 ? atoi(argv[1]) : 2;
    pthread_t threads[64];

    seconds_each = argc > 2 ? atof(argv[2]) : 0.4;
    if (count < 1 || count > 64)
        return 2;
    for (int i = 0; i < count; i++)
        if (pthread_create(&threads[i], NULL, spin, NULL) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    for (int i = 0; i < count; i++)
        pthread_join(threads[i], NULL);
    return 0;
}
