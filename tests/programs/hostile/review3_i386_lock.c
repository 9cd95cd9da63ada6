/* review3_i386_lock: takes a POSIX record lock on a file of the box through
 * the i386 entry (int $0x80, fcntl64 with F_SETLK64 = 13), the command
 * number the x86_64 filter's fcntl rules (F_SETLK = 6, F_SETLKW = 7,
 * F_OFD_SETLK(W) = 37/38) do not name. Then a child asks with the 64-bit
 * F_GETLK (allowed) whether the lock is really held.
 * Prints "x86_64_setlk: <outcome>", "i386_setlk64: <outcome>" and
 * "lock_seen_by_child: yes|no".
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>

struct __attribute__((packed)) compat_flock64 {
    short l_type;
    short l_whence;
    long long l_start;
    long long l_len;
    int l_pid;
};

static long int80(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c)
                     : "r8", "r9", "r10", "r11", "memory");
    return ret;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "lockfile";
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0) {
        report("open", -1);
        return 1;
    }
    struct flock native = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    report("x86_64_setlk", fcntl(fd, F_SETLK, &native));

    /* Below 4 GiB, where the i386 entry can read it. */
    struct compat_flock64 *lock = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (lock == MAP_FAILED) {
        report("mmap", -1);
        return 1;
    }
    memset(lock, 0, sizeof *lock);
    lock->l_type = F_WRLCK;
    lock->l_whence = SEEK_SET;
    long ret = int80(221 /* fcntl64 */, fd, 13 /* F_SETLK64 */, (long)lock);
    if (ret < 0) {
        errno = -ret;
        ret = -1;
    }
    report("i386_setlk64", ret);

    pid_t child = fork();
    if (child == 0) {
        int other = open(path, O_RDWR);
        struct flock probe = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (other < 0 || fcntl(other, F_GETLK, &probe) != 0)
            _exit(2);
        say("lock_seen_by_child", probe.l_type == F_UNLCK ? "no" : "yes");
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    return 0;
}
