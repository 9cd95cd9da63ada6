/* inodes files DIR [MAX]: create empty files DIR/i<n> forever.
 * inodes deep DIR [MAX]: mkdir and enter DIR/d, then d inside it, forever.
 * When a call fails, print "<mode>: <errno> after <n>" and exit 4; with
 * MAX, stop after MAX and print "<mode>: reached <MAX>".
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

#include <fcntl.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "files";
    const char *dir = argc > 2 ? argv[2] : ".";
    unsigned long max = argc > 3 ? strtoul(argv[3], NULL, 10) : 0;
    char name[64];

    if (chdir(dir) != 0) {
        report("chdir", -1);
        return 2;
    }
    for (unsigned long n = 0;; n++) {
        int failed;

        if (max && n == max) {
            printf("%s: reached %lu\n", mode, n);
            return 0;
        }
        if (!strcmp(mode, "deep")) {
            failed = mkdir("d", 0755) != 0 || chdir("d") != 0;
        } else {
            int fd;

            snprintf(name, sizeof name, "i%lu", n);
            fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0644);
            failed = fd < 0;
            if (fd >= 0)
                close(fd);
        }
        if (failed) {
            printf("%s: %s after %lu\n", mode, errname(errno), n);
            fflush(stdout);
            return 4;
        }
    }
}
