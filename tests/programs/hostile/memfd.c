/* memfd: copy this program into a memfd and fexecve it with the argument
 * "child", which reports the credentials it runs with:
 *   "child: uid=<uid> NoNewPrivs=<n> Seccomp=<n>" and its try of setuid(0).
 * If the exec is refused: "fexecve: <errno>".
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

extern char **environ;

static void status_value(const char *key, char *value, size_t size)
{
    char line[256];
    size_t len = strlen(key);
    FILE *status = fopen("/proc/self/status", "r");

    snprintf(value, size, "?");
    while (status && fgets(line, sizeof line, status)) {
        if (!strncmp(line, key, len) && line[len] == ':')
            sscanf(line + len + 1, "%63s", value);
    }
    if (status)
        fclose(status);
}

int main(int argc, char **argv)
{
    char buf[65536];
    ssize_t n;
    int self, memfd;

    if (argc > 1 && !strcmp(argv[1], "child")) {
        char nnp[64], seccomp[64];

        status_value("NoNewPrivs", nnp, sizeof nnp);
        status_value("Seccomp", seccomp, sizeof seccomp);
        printf("child: uid=%u NoNewPrivs=%s Seccomp=%s\n", getuid(), nnp, seccomp);
        report("child setuid 0", syscall(SYS_setuid, 0));
        return 0;
    }
    self = open("/proc/self/exe", O_RDONLY);
    memfd = (int)syscall(SYS_memfd_create, "isobox-memfd", 0);
    if (self < 0 || memfd < 0) {
        report("memfd_create", -1);
        return 2;
    }
    while ((n = read(self, buf, sizeof buf)) > 0) {
        if (write(memfd, buf, (size_t)n) != n)
            return 2;
    }
    close(self);
    {
        char *child_argv[] = {"memfd", "child", NULL};

        fexecve(memfd, child_argv, environ);
    }
    report("fexecve", -1);
    return 0;
}
