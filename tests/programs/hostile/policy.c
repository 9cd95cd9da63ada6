/* policy NAME...: probes of the system-call policy beyond syscalls.c: socket
 * families, file locks on inodes other boxes share, terminal injection,
 * personality bits, host-wide kernel pools, unknown calls and the i386
 * entry. Prints "NAME: <errno>" for a refused call, "NAME: SUCCEEDED"
 * otherwise. The memory probes print how much they managed to hold:
 *   shm        System V segments of 16 MiB, attached, filled, detached
 *   memfd      a memfd filled 4 MiB at a time
 *   fill DIR   4 MiB files in DIR (a tmpfs) until a write fails
 * each up to 512 MiB, as "<probe>: held <n> MiB".
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/netlink.h>
#include <linux/vm_sockets.h>
#include <sys/fanotify.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/tiocl.h>

#define MIB (1L << 20)
#define CHUNK (4 * MIB)
#define MOST (512 * MIB)

static char chunk[CHUNK];

/* A system call through the i386 gate; returns the kernel's answer. */
static long int80(long nr, long a, long b, long c)
{
    __asm__ volatile("int $0x80"
                     : "+a"(nr), "+b"(a), "+c"(b), "+d"(c)
                     :
                     : "r8", "r9", "r10", "r11", "memory");
    return (int)nr;
}

static void report_i386(const char *name, long ret)
{
    if (ret < 0)
        say(name, errname((int)-ret));
    else
        say(name, "SUCCEEDED");
}

static void report_held(const char *name, long bytes, int err)
{
    printf("%s: held %ld MiB (%s)\n", name, bytes / MIB, err ? errname(err) : "stopped");
    fflush(stdout);
}

static void fill_shm(void)
{
    long held = 0;
    int err = 0;

    while (held < MOST) {
        int id = shmget(IPC_PRIVATE, 16 * MIB, IPC_CREAT | 0600);
        char *at;

        if (id < 0) {
            err = errno;
            break;
        }
        at = shmat(id, NULL, 0);
        if (at == (void *)-1) {
            err = errno;
            break;
        }
        memset(at, 1, 16 * MIB);
        shmdt(at);
        held += 16 * MIB;
    }
    report_held("shm", held, err);
}

static void fill_fd(const char *name, int fd)
{
    long held = 0;
    int err = 0;

    while (held < MOST) {
        ssize_t n = write(fd, chunk, CHUNK);

        if (n < 0) {
            err = errno;
            break;
        }
        held += n;
        if (n < CHUNK) {
            err = ENOSPC;
            break;
        }
    }
    report_held(name, held, err);
}

static void fill_dir(const char *dir)
{
    long held = 0;
    int err = 0;
    char path[256], name[300];

    for (int i = 0; held < MOST; i++) {
        ssize_t n;
        int fd;

        snprintf(path, sizeof path, "%s/fill-%d", dir, i);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0) {
            err = errno;
            break;
        }
        n = write(fd, chunk, CHUNK);
        close(fd);
        if (n < 0) {
            err = errno;
            break;
        }
        held += n;
        if (n < CHUNK) {
            err = ENOSPC;
            break;
        }
    }
    snprintf(name, sizeof name, "fill %s", dir);
    report_held(name, held, err);
}

int main(int argc, char **argv)
{
    int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    struct flock lock = {.l_type = F_RDLCK, .l_whence = SEEK_SET};

    memset(chunk, 1, sizeof chunk);
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];

        if (!strcmp(name, "unix")) {
            report(name, socket(AF_UNIX, SOCK_STREAM, 0));
        } else if (!strcmp(name, "inet")) {
            report(name, socket(AF_INET, SOCK_STREAM, 0));
        } else if (!strcmp(name, "inet6")) {
            report(name, socket(AF_INET6, SOCK_DGRAM, 0));
        } else if (!strcmp(name, "vsock")) {
            report(name, socket(AF_VSOCK, SOCK_STREAM, 0));
        } else if (!strcmp(name, "netlink_uevent")) {
            report(name, socket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT));
        } else if (!strcmp(name, "packet")) {
            report(name, socket(AF_PACKET, SOCK_RAW, 0));
        } else if (!strcmp(name, "vsock_high_bits")) {
            /* The family is an int: bits above 32 must not hide it. */
            report(name, syscall(SYS_socket, (1L << 32) | AF_VSOCK, SOCK_STREAM, 0));
        } else if (!strcmp(name, "socketpair_inet")) {
            int pair[2];
            report(name, socketpair(AF_INET, SOCK_STREAM, 0, pair));
        } else if (!strcmp(name, "modify_ldt")) {
            char table[16];
            report(name, syscall(SYS_modify_ldt, 0, table, sizeof table));
        } else if (!strcmp(name, "open_tree_attr")) {
            report(name, syscall(467, -1, "/", 0, NULL, 0));
        } else if (!strcmp(name, "unknown_call")) {
            report(name, syscall(1000));
        } else if (!strcmp(name, "personality_rie")) {
            report(name, personality(PER_LINUX | READ_IMPLIES_EXEC));
        } else if (!strcmp(name, "personality_linux32")) {
            report(name, personality(PER_LINUX32));
            personality(PER_LINUX);
        } else if (!strcmp(name, "fanotify_init")) {
            report(name, fanotify_init(FAN_CLASS_NOTIF, O_RDONLY));
        } else if (!strcmp(name, "inotify_init")) {
            report(name, inotify_init1(IN_CLOEXEC));
        } else if (!strcmp(name, "flock")) {
            report(name, flock(self, LOCK_SH | LOCK_NB));
        } else if (!strcmp(name, "fcntl_setlk")) {
            report(name, fcntl(self, F_SETLK, &lock));
        } else if (!strcmp(name, "fcntl_setlkw")) {
            report(name, fcntl(self, F_SETLKW, &lock));
        } else if (!strcmp(name, "fcntl_ofd_setlk")) {
            report(name, fcntl(self, F_OFD_SETLK, &lock));
        } else if (!strcmp(name, "fcntl_setlease")) {
            report(name, fcntl(self, F_SETLEASE, F_RDLCK));
        } else if (!strcmp(name, "fcntl_notify")) {
            int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            report(name, fcntl(dir, F_NOTIFY, DN_ACCESS));
        } else if (!strcmp(name, "fcntl_getlk")) {
            report(name, fcntl(self, F_GETLK, &lock));
        } else if (!strcmp(name, "fcntl_getfl")) {
            report(name, fcntl(self, F_GETFL));
        } else if (!strcmp(name, "tiocsti")) {
            char c = 'x';
            report(name, ioctl(0, TIOCSTI, &c));
        } else if (!strcmp(name, "tiocsti_high_bits")) {
            char c = 'x';
            report(name, syscall(SYS_ioctl, 0, (1L << 32) | TIOCSTI, &c));
        } else if (!strcmp(name, "tioclinux")) {
            char sub = TIOCL_GETSHIFTSTATE;
            report(name, ioctl(0, TIOCLINUX, &sub));
        } else if (!strcmp(name, "tcgets")) {
            /* An ordinary terminal ioctl: ENOTTY on a pipe, never EPERM. */
            report(name, ioctl(0, TCGETS, chunk));
        } else if (!strcmp(name, "io_setup")) {
            aio_context_t ctx = 0;
            long ret = report(name, syscall(SYS_io_setup, 1, &ctx));
            if (ret == 0)
                syscall(SYS_io_destroy, ctx);
        } else if (!strcmp(name, "keyctl")) {
            report(name, syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
        } else if (!strcmp(name, "io_uring_setup")) {
            char params[120] = {0};
            long fd = report(name, syscall(SYS_io_uring_setup, 1, params));
            if (fd >= 0)
                close((int)fd);
        } else if (!strcmp(name, "prctl_set_mm")) {
            report(name, prctl(PR_SET_MM, PR_SET_MM_START_BRK, 0, 0, 0));
        } else if (!strcmp(name, "prctl_set_name")) {
            report(name, prctl(PR_SET_NAME, "policy", 0, 0, 0));
        } else if (!strcmp(name, "memfd_create")) {
            report(name, memfd_create("probe", MFD_CLOEXEC));
        } else if (!strcmp(name, "shm")) {
            fill_shm();
        } else if (!strcmp(name, "memfd")) {
            int fd = memfd_create("fill", MFD_CLOEXEC);
            if (fd < 0)
                report("memfd", fd);
            else
                fill_fd("memfd", fd);
        } else if (!strcmp(name, "fill") && i + 1 < argc) {
            fill_dir(argv[++i]);
        } else if (!strcmp(name, "i386_getpid")) {
            report_i386(name, int80(20, 0, 0, 0));
        } else if (!strcmp(name, "i386_keyctl")) {
            report_i386(name, int80(288, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
        } else if (!strcmp(name, "i386_mount")) {
            report_i386(name, int80(21, 0, 0, 0));
        } else if (!strcmp(name, "i386_socket_vsock")) {
            report_i386(name, int80(359, AF_VSOCK, SOCK_STREAM, 0));
        } else if (!strcmp(name, "i386_unshare_user")) {
            report_i386(name, int80(310, 0x10000000 /* CLONE_NEWUSER */, 0, 0));
        } else if (!strcmp(name, "i386_ioctl_tiocsti")) {
            report_i386(name, int80(54, 0, TIOCSTI, 0));
        } else {
            say(name, "unknown probe");
        }
    }
    return 0;
}
