/* syscalls NAME...: attempts each named system call with arguments that are
 * harmless where the call is allowed, and prints "NAME: <errno>" when it is
 * refused or "NAME: SUCCEEDED" when it went through. The default seccomp
 * policy of isobox must refuse every dangerous one; "fork", "thread" and
 * "personality_query" are ordinary calls that must keep working.
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

#include <fcntl.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif

/* clone3's argument block, version 0. */
struct clone_args_v0 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

static volatile long secret = 42;

/* A child that waits to be killed; the caller kills and reaps it. */
static pid_t sleeping_child(void)
{
    pid_t pid = fork();

    if (pid == 0) {
        for (;;)
            pause();
    }
    return pid;
}

static void reap(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

/* Reports a fork-like call: the child exits at once, the parent reaps it. */
static void forked(const char *name, long ret)
{
    if (ret == 0)
        _exit(0);
    report(name, ret);
    if (ret > 0)
        waitpid((pid_t)ret, NULL, 0);
}

static void *thread_body(void *arg)
{
    return arg;
}

static void attempt(const char *name)
{
    char buf[64] = {0};

    if (!strcmp(name, "ptrace_child")) {
        pid_t child = sleeping_child();

        report(name, ptrace(PTRACE_SEIZE, child, NULL, NULL));
        reap(child);
    } else if (!strcmp(name, "ptrace_init")) {
        report(name, ptrace(PTRACE_SEIZE, 1, NULL, NULL));
    } else if (!strcmp(name, "process_vm_readv")) {
        long copy = 0;
        struct iovec local = {&copy, sizeof copy}, remote = {(void *)&secret, sizeof secret};
        pid_t child = sleeping_child();

        report(name, process_vm_readv(child, &local, 1, &remote, 1, 0));
        reap(child);
    } else if (!strcmp(name, "process_vm_writev")) {
        long value = 7;
        struct iovec local = {&value, sizeof value}, remote = {(void *)&secret, sizeof secret};
        pid_t child = sleeping_child();

        report(name, process_vm_writev(child, &local, 1, &remote, 1, 0));
        reap(child);
    } else if (!strcmp(name, "pidfd_getfd")) {
        pid_t child = sleeping_child();
        long pidfd = syscall(SYS_pidfd_open, child, 0);

        report(name, pidfd < 0 ? -1 : syscall(SYS_pidfd_getfd, (int)pidfd, 1, 0));
        reap(child);
    } else if (!strcmp(name, "kexec_load")) {
        report(name, syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0UL));
    } else if (!strcmp(name, "kexec_file_load")) {
        report(name, syscall(SYS_kexec_file_load, -1, -1, 0UL, "", 0UL));
    } else if (!strcmp(name, "bpf")) {
        /* BPF_MAP_CREATE of an array map with one 4-byte entry. */
        uint32_t attr[32] = {2, 4, 4, 1};

        report(name, syscall(SYS_bpf, 0, attr, sizeof attr));
    } else if (!strcmp(name, "perf_event_open")) {
        struct perf_event_attr attr = {0};

        attr.size = sizeof attr;
        attr.type = PERF_TYPE_SOFTWARE;
        attr.config = PERF_COUNT_SW_TASK_CLOCK;
        attr.exclude_kernel = 1;
        attr.exclude_hv = 1;
        report(name, syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0UL));
    } else if (!strcmp(name, "keyctl")) {
        report(name, syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 1));
    } else if (!strcmp(name, "add_key")) {
        report(name, syscall(SYS_add_key, "user", "isobox-probe", "x", 1UL,
                             KEY_SPEC_PROCESS_KEYRING));
    } else if (!strcmp(name, "request_key")) {
        report(name, syscall(SYS_request_key, "user", "isobox-none", NULL, 0));
    } else if (!strcmp(name, "userfaultfd")) {
        report(name, syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY));
    } else if (!strcmp(name, "io_uring_setup")) {
        uint32_t params[30] = {0};

        report(name, syscall(SYS_io_uring_setup, 4, params));
    } else if (!strcmp(name, "io_uring_enter")) {
        /* 1000: surely not open (-1 means "no ring" to newer kernels). */
        report(name, syscall(SYS_io_uring_enter, 1000, 0, 0, 0, NULL, 0));
    } else if (!strcmp(name, "io_uring_register")) {
        report(name, syscall(SYS_io_uring_register, 1000, 0, NULL, 0));
    } else if (!strcmp(name, "mount")) {
        report(name, mount("none", "/tmp", "tmpfs", 0, NULL));
    } else if (!strcmp(name, "umount2")) {
        report(name, umount2("/box", MNT_DETACH));
    } else if (!strcmp(name, "pivot_root")) {
        report(name, syscall(SYS_pivot_root, "/tmp", "/tmp"));
    } else if (!strcmp(name, "move_mount")) {
        report(name, syscall(SYS_move_mount, AT_FDCWD, "/tmp", AT_FDCWD, "/box", 0));
    } else if (!strcmp(name, "fsopen")) {
        report(name, syscall(SYS_fsopen, "tmpfs", 0));
    } else if (!strcmp(name, "fsmount")) {
        report(name, syscall(SYS_fsmount, -1, 0, 0));
    } else if (!strcmp(name, "open_tree")) {
        report(name, syscall(SYS_open_tree, AT_FDCWD, "/box", OPEN_TREE_CLONE));
    } else if (!strcmp(name, "unshare_user")) {
        report(name, unshare(CLONE_NEWUSER));
    } else if (!strcmp(name, "unshare_mount")) {
        report(name, unshare(CLONE_NEWNS));
    } else if (!strcmp(name, "unshare_net")) {
        report(name, unshare(CLONE_NEWNET));
    } else if (!strcmp(name, "setns")) {
        int fd = open("/proc/self/ns/uts", O_RDONLY);

        report(name, fd < 0 ? -1 : setns(fd, 0));
        if (fd >= 0)
            close(fd);
    } else if (!strcmp(name, "clone_newuser")) {
        forked(name, syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0UL));
    } else if (!strcmp(name, "clone_newns")) {
        forked(name, syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, 0UL));
    } else if (!strcmp(name, "clone3_newuser")) {
        struct clone_args_v0 args = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};

        forked(name, syscall(SYS_clone3, &args, sizeof args));
    } else if (!strcmp(name, "clone3_plain")) {
        struct clone_args_v0 args = {.exit_signal = SIGCHLD};

        forked(name, syscall(SYS_clone3, &args, sizeof args));
    } else if (!strcmp(name, "fork")) {
        forked(name, fork());
    } else if (!strcmp(name, "thread")) {
        pthread_t thread;
        int err = pthread_create(&thread, NULL, thread_body, NULL);

        if (err == 0)
            pthread_join(thread, NULL);
        errno = err;
        report(name, err ? -1 : 0);
    } else if (!strcmp(name, "open_by_handle_at")) {
        struct {
            unsigned int bytes;
            int type;
            unsigned char handle[8];
        } handle = {8, 1, {0}};

        report(name, syscall(SYS_open_by_handle_at, AT_FDCWD, &handle, O_RDONLY));
    } else if (!strcmp(name, "name_to_handle_at")) {
        struct {
            unsigned int bytes;
            int type;
            unsigned char handle[128];
        } handle = {128, 0, {0}};
        int mount_id;

        report(name, syscall(SYS_name_to_handle_at, AT_FDCWD, "/box", &handle, &mount_id, 0));
    } else if (!strcmp(name, "syslog")) {
        /* SYSLOG_ACTION_SIZE_BUFFER: only asks how big the kernel log is. */
        report(name, syscall(SYS_syslog, 10, NULL, 0));
    } else if (!strcmp(name, "init_module")) {
        report(name, syscall(SYS_init_module, buf, 0UL, ""));
    } else if (!strcmp(name, "finit_module")) {
        report(name, syscall(SYS_finit_module, -1, "", 0));
    } else if (!strcmp(name, "delete_module")) {
        report(name, syscall(SYS_delete_module, "isobox_none", O_NONBLOCK));
    } else if (!strcmp(name, "reboot")) {
        report(name, syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                             LINUX_REBOOT_CMD_CAD_OFF, NULL));
    } else if (!strcmp(name, "swapon")) {
        report(name, syscall(SYS_swapon, "/box/isobox-no-swap", 0));
    } else if (!strcmp(name, "swapoff")) {
        report(name, syscall(SYS_swapoff, "/box/isobox-no-swap"));
    } else if (!strcmp(name, "settimeofday")) {
        struct timeval now;

        gettimeofday(&now, NULL);
        report(name, settimeofday(&now, NULL));
    } else if (!strcmp(name, "clock_settime")) {
        struct timespec now;

        clock_gettime(CLOCK_REALTIME, &now);
        report(name, clock_settime(CLOCK_REALTIME, &now));
    } else if (!strcmp(name, "adjtimex")) {
        struct timex change = {0};

        change.modes = ADJ_OFFSET;
        report(name, adjtimex(&change));
    } else if (!strcmp(name, "personality_norandom")) {
        report(name, syscall(SYS_personality, ADDR_NO_RANDOMIZE));
    } else if (!strcmp(name, "personality_query")) {
        report(name, syscall(SYS_personality, 0xffffffffUL));
    } else if (!strcmp(name, "sethostname")) {
        report(name, sethostname("escaped", 7));
    } else if (!strcmp(name, "setdomainname")) {
        report(name, setdomainname("escaped", 7));
    } else if (!strcmp(name, "chroot")) {
        report(name, chroot("/tmp"));
    } else if (!strcmp(name, "iopl")) {
        report(name, syscall(SYS_iopl, 3));
    } else if (!strcmp(name, "acct")) {
        report(name, syscall(SYS_acct, "/box/isobox-acct"));
    } else {
        fprintf(stderr, "syscalls: unknown call %s\n", name);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        attempt(argv[i]);
    return 0;
}
