/* memory_bomb: allocate and touch 1 MiB blocks forever, never freeing.
 * Hostile: only run inside the sandbox with a memory limit. Exit 1 if
 * malloc itself fails (it should be the OOM killer that stops us). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    for (;;) {
        char *block = malloc(1 << 20);

        if (block == NULL) {
            fprintf(stderr, "malloc failed\n");
            return 1;
        }
        memset(block, 1, 1 << 20);
        __asm__ volatile("" : : "r"(block) : "memory");
    }
}
