/* recurse MIB: recurse until about MIB MiB of stack is in use (1 KiB frames
 * that stay live across the call, so no tail-call trick can fold them),
 * then print "depth N" and exit 0. Past RLIMIT_STACK it dies by SIGSEGV. */
#include <stdio.h>
#include <stdlib.h>

static __attribute__((noinline)) int recurse(long depth, volatile char *parent)
{
    volatile char frame[1024];
    int below = 0;

    frame[0] = (char)(parent[0] + 1);
    frame[sizeof frame - 1] = frame[0];
    if (depth > 0)
        below = recurse(depth - 1, frame);
    return below + frame[sizeof frame - 1] + parent[0];
}

int main(int argc, char **argv)
{
    long depth = (argc > 1 ? atol(argv[1]) : 16) * 1024;
    volatile char root[1] = {0};
    int sum = recurse(depth, root);

    printf("depth %ld %d\n", depth, sum != 0);
    return 0;
}
