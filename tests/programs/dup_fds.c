/* dup_fds: duplicate stdout until the kernel refuses, then print how many
 * descriptors were open at that point (highest fd + 1). Exit 2 if the
 * refusal was not EMFILE. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    int highest = 2;

    for (;;) {
        int fd = dup(1);

        if (fd < 0) {
            if (errno != EMFILE) {
                perror("dup");
                return 2;
            }
            break;
        }
        if (fd > highest)
            highest = fd;
    }
    printf("%d\n", highest + 1);
    return 0;
}
