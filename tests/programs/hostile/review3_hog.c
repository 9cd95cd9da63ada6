/* review3_hog: holds memory where RLIMIT_AS does not count it.
 *   file PATH MIB  writes MIB MiB to PATH (in the isolate face's /box, a
 *                  tmpfs: memory, and it outlives the run); prints
 *                  "wrote <n> MiB".
 *   sock           fills connected unix socket pairs (raising its own
 *                  RLIMIT_NOFILE soft limit to the hard one) until no more
 *                  can be made; prints "in flight <n> MiB in <p> pairs".
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>

static char chunk[1 << 20];

int main(int argc, char **argv)
{
    memset(chunk, 'x', sizeof chunk);
    if (argc > 3 && !strcmp(argv[1], "file")) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
        long want = atol(argv[3]), done = 0;
        if (fd < 0)
            return report("open", -1), 1;
        for (; done < want; done++)
            if (write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk)
                break;
        printf("wrote %ld MiB\n", done);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "sock")) {
        struct rlimit files;
        long total = 0;
        int pairs = 0;
        if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
            files.rlim_cur = files.rlim_max;
            setrlimit(RLIMIT_NOFILE, &files);
        }
        for (;;) {
            int pair[2], size = 1 << 30;
            if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0)
                break;
            setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
            fcntl(pair[0], F_SETFL, O_NONBLOCK);
            pairs++;
            for (;;) {
                ssize_t n = write(pair[0], chunk, 65536);
                if (n <= 0)
                    break;
                total += n;
            }
        }
        printf("in flight %ld MiB in %d pairs\n", total >> 20, pairs);
        return 0;
    }
    return 2;
}
