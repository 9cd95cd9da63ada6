/* flood out|err|both BYTES: write BYTES bytes of 'o' to stdout, of 'e' to
 * stderr, or both (interleaved in 64 KiB chunks), then exit 0. Exit 1 if
 * a write fails. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t done = write(fd, buf, len);

        if (done < 0)
            return -1;
        buf += done;
        len -= (size_t)done;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static char out[65536], err[65536];
    const char *mode = argc > 1 ? argv[1] : "out";
    long long left = argc > 2 ? atoll(argv[2]) : 1 << 20;
    int to_out = strcmp(mode, "err") != 0;
    int to_err = strcmp(mode, "out") != 0;

    memset(out, 'o', sizeof out);
    memset(err, 'e', sizeof err);
    while (left > 0) {
        size_t len = left < (long long)sizeof out ? (size_t)left : sizeof out;

        if (to_out && write_all(1, out, len) != 0)
            return 1;
        if (to_err && write_all(2, err, len) != 0)
            return 1;
        left -= (long long)len;
    }
    return 0;
}
