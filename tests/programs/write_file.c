/* write_file PATH BYTES: write BYTES bytes to PATH in 64 KiB chunks, then
 * exit 0. Past RLIMIT_FSIZE the kernel sends SIGXFSZ, which kills us; if
 * the write fails instead, exit 1. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static char chunk[65536];
    long long left = argc > 2 ? atoll(argv[2]) : 1 << 20;
    int fd;

    if (argc < 2)
        return 2;
    fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror("open");
        return 1;
    }
    memset(chunk, 'f', sizeof chunk);
    while (left > 0) {
        size_t want = left < (long long)sizeof chunk ? (size_t)left : sizeof chunk;
        ssize_t done = write(fd, chunk, want);

        if (done < 0) {
            perror("write");
            return 1;
        }
        left -= done;
    }
    return close(fd) == 0 ? 0 : 1;
}
