/* daemon MARKER: become a daemon the classic way (fork, setsid, fork again,
 * ignore every catchable signal), tell the original process through a pipe,
 * and let it exit 0 at once. Two seconds later the daemon writes
 * /box/MARKER-alive, then sleeps forever: the file must never appear,
 * because the daemon must die with the run.
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
    const char *marker = argc > 1 ? argv[1] : "daemon";
    int ready[2];
    char byte;
    pid_t pid;

    if (pipe(ready) != 0)
        return 2;
    pid = fork();
    if (pid == 0) {
        setsid();
        if (fork() == 0) {
            char path[4096];

            for (int signal = 1; signal < SIGRTMIN; signal++) {
                if (signal != SIGKILL && signal != SIGSTOP)
                    sigaction(signal, &(struct sigaction){.sa_handler = SIG_IGN}, NULL);
            }
            close(ready[0]);
            if (write(ready[1], "r", 1) != 1)
                _exit(3);
            close(ready[1]);
            sleep(2);
            snprintf(path, sizeof path, "/box/%s-alive", marker);
            close(open(path, O_WRONLY | O_CREAT, 0644));
            for (;;)
                pause();
        }
        _exit(0);
    }
    close(ready[1]);
    waitpid(pid, NULL, 0);
    if (read(ready[0], &byte, 1) != 1)
        return 1;
    say("daemon", "detached");
    return 0;
}
