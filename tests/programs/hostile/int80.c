/* int80: a 64-bit program entering the kernel through the i386 gate
 * (int $0x80, getpid), which seccomp filters written for x86_64 numbers
 * would misread. Prints "int80: returned <n>" and exits 3 if it comes back.
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

int main(void)
{
    long ret;

    say("int80", "trying");
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(20L) /* getpid in the i386 table */
                     : "rcx", "r8", "r9", "r10", "r11", "memory");
    printf("int80: returned %ld\n", ret);
    return 3;
}
