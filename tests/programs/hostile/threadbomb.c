/* threadbomb: create sleeping threads until refused, then print
 * "threads <n>: <errno>" and exit 1.
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

#include <pthread.h>

static void *sleep_forever(void *arg)
{
    for (;;)
        pause();
    return arg;
}

int main(void)
{
    pthread_attr_t attr;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (unsigned long count = 0;; count++) {
        pthread_t thread;
        int err = pthread_create(&thread, &attr, sleep_forever, NULL);

        if (err != 0) {
            printf("threads %lu: %s\n", count, errname(err));
            fflush(stdout);
            return 1;
        }
    }
}
