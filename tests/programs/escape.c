/* escape exit|sleep|spin: start four children that try to outlive the run,
 * each sleeping forever once ready:
 *   - one that ignores SIGTERM, SIGHUP and SIGINT;
 *   - one that calls setsid();
 *   - one double-forked: the grandchild calls setsid() and ignores SIGTERM,
 *     its parent exits so it is orphaned;
 *   - one in its own process group that ignores SIGHUP and stops itself
 *     with SIGSTOP.
 * When all four have reported ready through a pipe, print "ready 4" and then
 * exit 0 (exit), sleep forever (sleep) or spin forever (spin).
 * Hostile: only run inside the sandbox with limits. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int ready_pipe[2];

static void report_ready(void)
{
    char byte = 'r';

    if (write(ready_pipe[1], &byte, 1) != 1)
        _exit(3);
    close(ready_pipe[1]);
}

static void sleep_forever(void)
{
    for (;;)
        pause();
}

static void ignore_termination(void)
{
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "exit";
    char bytes[4];
    size_t got = 0;
    pid_t pid;

    if (pipe(ready_pipe) != 0)
        return 2;

    if (fork() == 0) {
        ignore_termination();
        report_ready();
        sleep_forever();
    }
    if (fork() == 0) {
        setsid();
        report_ready();
        sleep_forever();
    }
    pid = fork();
    if (pid == 0) {
        if (fork() == 0) {
            setsid();
            ignore_termination();
            report_ready();
            sleep_forever();
        }
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    if (fork() == 0) {
        setpgid(0, 0);
        ignore_termination(); /* survive the SIGHUP of an orphaned group */
        report_ready();
        raise(SIGSTOP);
        sleep_forever();
    }

    close(ready_pipe[1]);
    while (got < sizeof bytes) {
        ssize_t n = read(ready_pipe[0], bytes + got, sizeof bytes - got);

        if (n <= 0)
            break;
        got += (size_t)n;
    }
    printf("ready %zu\n", got);
    fflush(stdout);

    if (strcmp(mode, "spin") == 0) {
        volatile unsigned long sink = 0;

        for (;;)
            sink++;
    }
    if (strcmp(mode, "sleep") == 0)
        sleep_forever();
    return got == sizeof bytes ? 0 : 1;
}
