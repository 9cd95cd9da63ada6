/* memory heap|stack|mmap|shared: allocate and touch memory forever, in
 * 1 MiB steps (heap, stack frames) or 4 MiB mappings (mmap: private
 * anonymous; shared: shared anonymous, which is shmem).
 * memory files DIR MARKER: fill the filesystem of DIR with 1 MiB files
 * DIR/MARKER-<n> forever; when a write fails, print "files: <errno> after
 * <n> MiB" and exit 4.
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

#include <fcntl.h>
#include <sys/mman.h>

#define MIB (1 << 20)

static void deeper(unsigned long depth)
{
    volatile char frame[MIB];

    memset((char *)frame, (int)depth, sizeof frame);
    if (frame[depth % MIB] != 1 || depth < 1000000)
        deeper(depth + 1);
    frame[depth % MIB]++;
}

static int fill(const char *dir, const char *marker)
{
    static char chunk[MIB];
    char path[4096];

    memset(chunk, 'f', sizeof chunk);
    for (unsigned long n = 0;; n++) {
        int fd;

        snprintf(path, sizeof path, "%s/%s-%lu", dir, marker, n);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk) {
            printf("files: %s after %lu MiB\n", errname(errno), n);
            return 4;
        }
        close(fd);
    }
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "heap";

    if (!strcmp(mode, "files") && argc > 3)
        return fill(argv[2], argv[3]);
    if (!strcmp(mode, "stack"))
        deeper(0);
    for (;;) {
        if (!strcmp(mode, "heap")) {
            char *block = malloc(MIB);

            if (!block)
                return 5;
            memset(block, 'h', MIB);
        } else {
            int shared = !strcmp(mode, "shared");
            char *map = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE,
                             (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);

            if (map == MAP_FAILED)
                return 5;
            memset(map, 'm', 4 * MIB);
        }
    }
}
