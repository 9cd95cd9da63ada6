/* forkbomb: every process forks forever. The first refusal seen by the
 * original process is printed once ("fork refused: EAGAIN"), and it goes on.
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

int main(void)
{
    pid_t original = getpid();
    int said = 0;

    for (;;) {
        if (fork() < 0 && !said && getpid() == original) {
            report("fork refused", -1);
            said = 1;
        }
    }
}
