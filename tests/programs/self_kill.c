/* self_kill: send SIGKILL to ourselves. The sandbox did not kill us. */
#include <signal.h>
#include <unistd.h>

int main(void)
{
    kill(getpid(), SIGKILL);
    pause();
    return 0;
}
