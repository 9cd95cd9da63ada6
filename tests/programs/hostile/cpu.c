/* cpu spin|sigxcpu|sigterm|stop|sleep: never end on its own.
 *   spin     burn CPU forever
 *   sigxcpu  catch SIGXCPU (the CPU rlimit's warning) and keep burning
 *   sigterm  ignore every catchable signal, then sleep forever
 *   stop     stop itself with SIGSTOP (uses no CPU while stopped)
 *   sleep    sleep forever
 * Each prints "<mode>: started" first. Hostile: only run inside the sandbox
 * with limits. */
#include "hostile.h"

#include <signal.h>

static volatile sig_atomic_t warnings;

static void on_sigxcpu(int signal)
{
    (void)signal;
    warnings++;
}

static void burn(void)
{
    volatile unsigned long sink = 0;

    for (;;)
        sink++;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "spin";

    say(mode, "started");
    if (!strcmp(mode, "sigxcpu")) {
        struct sigaction action = {0};

        action.sa_handler = on_sigxcpu;
        action.sa_flags = SA_RESTART;
        sigaction(SIGXCPU, &action, NULL);
    } else if (!strcmp(mode, "sigterm")) {
        for (int signal = 1; signal < SIGRTMIN; signal++) {
            if (signal != SIGKILL && signal != SIGSTOP && signal != SIGSEGV)
                sigaction(signal, &(struct sigaction){.sa_handler = SIG_IGN}, NULL);
        }
        for (;;)
            pause();
    } else if (!strcmp(mode, "stop")) {
        raise(SIGSTOP);
        say(mode, "continued");
        for (;;)
            pause();
    } else if (!strcmp(mode, "sleep")) {
        for (;;)
            pause();
    }
    burn();
}
