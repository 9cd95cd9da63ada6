/* whoami: prints "euid=<n> egid=<n>". Planted setuid-root in the box by the
 * tests, to show that running it gives no root. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    printf("euid=%u egid=%u\n", geteuid(), getegid());
    return 0;
}
