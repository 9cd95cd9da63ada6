/* userns: what a program in a rootless box (a user namespace whose only
 * mapped id is the caller's) tries in order to get out of it or to act on
 * its namespace. Prints one line per attempt: "<name> ok" when the call
 * succeeded, "<name> errno N" when it failed; then "capeff <hex>".
 * Hostile: only run inside the sandbox with limits. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *name, int failed)
{
    if (failed)
        printf("%s errno %d\n", name, errno);
    else
        printf("%s ok\n", name);
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n < 0 ? -1 : 0;
}

int main(void)
{
    report("uid_map", write_file("/proc/self/uid_map", "0 1000 1\n") != 0);
    report("gid_map", write_file("/proc/self/gid_map", "0 1000 1\n") != 0);
    report("setgroups_file", write_file("/proc/self/setgroups", "allow") != 0);
    report("setgroups", setgroups(0, NULL) != 0);
    report("setuid0", setuid(0) != 0);
    report("unshare_user", unshare(CLONE_NEWUSER) != 0);
    report("unshare_mount", unshare(CLONE_NEWNS) != 0);
    {
        /* A nested user namespace through clone, as a runtime would. */
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0)
            _exit(0);
        if (pid > 0)
            waitpid((pid_t)pid, NULL, 0);
        report("clone_user", pid < 0);
    }
    report("mount_tmpfs", mount("none", "/tmp", "tmpfs", 0, NULL) != 0);
    report("remount_root_rw", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL) != 0);
    report("umount_proc", umount2("/proc", MNT_DETACH) != 0);
    report("setns_user", setns(open("/proc/1/ns/user", O_RDONLY), 0) != 0);
    report("sethostname", sethostname("owned", 5) != 0);
    report("chroot", chroot("/tmp") != 0);

    char line[256];
    FILE *status = fopen("/proc/self/status", "r");
    while (status && fgets(line, sizeof line, status))
        if (!strncmp(line, "CapEff:", 7))
            printf("capeff %s", line + 8 + strspn(line + 7, " \t") - 1);
    return 0;
}
