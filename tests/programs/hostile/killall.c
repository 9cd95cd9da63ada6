/* killall KEEPER SENTINEL: start a child, send SIGKILL to every process it
 * may signal (kill(-1)), report how the child ended, then try to signal
 * pid 1 of the box, the keeper and a host process of the same uid
 * (SENTINEL) by their host pids, and to get a pidfd of the keeper.
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
    pid_t keeper = argc > 1 ? (pid_t)atoi(argv[1]) : 0;
    pid_t sentinel = argc > 2 ? (pid_t)atoi(argv[2]) : 0;
    int status = 0;
    pid_t child = fork();

    if (child == 0) {
        for (;;)
            pause();
    }
    usleep(100 * 1000);
    if (kill(-1, SIGKILL) == 0)
        say("kill -1", "sent");
    else
        report("kill -1", -1);
    if (waitpid(child, &status, 0) == child && WIFSIGNALED(status))
        printf("child: signal %d\n", WTERMSIG(status));
    else
        printf("child: survived\n");
    fflush(stdout);
    report("kill 1", kill(1, SIGKILL));
    report("kill keeper", kill(keeper, SIGKILL));
    report("kill sentinel", kill(sentinel, SIGKILL));
    report("pidfd keeper", syscall(SYS_pidfd_open, keeper, 0));
    return 0;
}
