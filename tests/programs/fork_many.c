/* fork_many fork|thread COUNT: create COUNT child processes (which sleep
 * forever) or COUNT threads (which sleep forever). If the kernel refuses
 * one, say so on stderr and exit 1; otherwise print "created COUNT" and
 * exit 0, leaving the children behind for the sandbox to kill.
 * Hostile: only run inside the sandbox with a process limit. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *sleep_forever(void *unused)
{
    (void)unused;
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 && strcmp(argv[1], "thread") == 0;
    int count = argc > 2 ? atoi(argv[2]) : 10;

    for (int i = 0; i < count; i++) {
        if (threads) {
            pthread_t thread;

            if (pthread_create(&thread, NULL, sleep_forever, NULL) != 0) {
                fprintf(stderr, "pthread_create refused after %d\n", i);
                return 1;
            }
        } else {
            pid_t pid = fork();

            if (pid < 0) {
                fprintf(stderr, "fork refused after %d\n", i);
                return 1;
            }
            if (pid == 0)
                sleep_forever(NULL);
        }
    }
    printf("created %d\n", count);
    return 0;
}
