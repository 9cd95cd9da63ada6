/* x32: a system call with the x32 ABI bit (0x40000000) set, which seccomp
 * filters matching x86_64 numbers would miss. Prints "x32: <result>" and
 * exits 3 if it comes back. Hostile: only run inside the sandbox with
 * limits. */
#include "hostile.h"

#include <sys/syscall.h>

int main(void)
{
    say("x32", "trying");
    report("x32", syscall(SYS_getpid | 0x40000000L));
    return 3;
}
