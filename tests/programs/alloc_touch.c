/* alloc_touch MIB: malloc exactly MIB MiB in one block, write every byte of
 * it (so every page is resident), then exit 0. Exit 1 if malloc fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    size_t size = (size_t)(argc > 1 ? atol(argv[1]) : 100) << 20;
    char *block = malloc(size);

    if (block == NULL) {
        fprintf(stderr, "malloc failed\n");
        return 1;
    }
    memset(block, 1, size);
    /* Tell the compiler the memory is used, so the memset stays. */
    __asm__ volatile("" : : "r"(block) : "memory");
    return 0;
}
