/* ipc KEY: look for the host's System V shared memory segment, message
 * queue and semaphore set with this key (decimal). One line each.
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

int main(int argc, char **argv)
{
    key_t key = argc > 1 ? (key_t)strtol(argv[1], NULL, 10) : 0;

    report("shmget", shmget(key, 0, 0));
    report("msgget", msgget(key, 0));
    report("semget", semget(key, 0, 0));
    return 0;
}
