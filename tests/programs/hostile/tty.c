/* tty [steal|hack]: attacks the terminal on its stdin. Prints whether it
 * has a controlling terminal, then pushes "echo INJECTED" into the
 * terminal's input queue with TIOCSTI, as if typed (a root shell reading
 * that terminal would run it after the sandbox exits).
 *   steal: first leave for a session of its own and try to take the
 *          terminal as its controlling terminal (TIOCSCTTY, stealing).
 *   hack:  only report whether it is the terminal's foreground group
 *          (isolate's --tty-hack), no injection. */
#include "hostile.h"
#include <sys/ioctl.h>
#include <termios.h>

/* tty_nr, field 7 of /proc/self/stat: 0 when there is no controlling
 * terminal. */
static long controlling_tty(void)
{
    char buf[1024];
    FILE *stat = fopen("/proc/self/stat", "r");
    long tty = -1;

    if (stat && fgets(buf, sizeof buf, stat)) {
        char *end = strrchr(buf, ')');
        if (end)
            sscanf(end + 1, " %*c %*d %*d %*d %ld", &tty);
    }
    if (stat)
        fclose(stat);
    return tty;
}

static void inject(const char *what)
{
    const char *text = "echo INJECTED\n";
    long ret = 0;

    for (const char *c = text; *c && ret == 0; c++)
        ret = ioctl(0, TIOCSTI, c);
    report(what, ret);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";

    printf("ctty: %s\n", controlling_tty() > 0 ? "yes" : "none");
    fflush(stdout);
    if (strcmp(mode, "hack") == 0) {
        printf("foreground: %s\n", tcgetpgrp(0) == getpgrp() ? "yes" : "no");
        return 0;
    }
    inject("tiocsti");
    if (strcmp(mode, "steal") == 0) {
        report("setsid", setsid());
        report("tiocsctty", ioctl(0, TIOCSCTTY, 1));
        inject("tiocsti after steal");
    }
    return 0;
}
