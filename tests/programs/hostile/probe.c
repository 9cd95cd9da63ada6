/* probe OP ARG... [OP ARG...]: one filesystem or process probe after the
 * other, one line each:
 *   read PATH        open and read PATH         "read PATH: ok" or errno
 *   list PATH        names in directory PATH    "list PATH: a b c" or errno
 *   write PATH       create/truncate PATH, write one byte
 *   mkdir PATH       mkdir PATH
 *   stat PATH        lstat PATH
 *   chmod PATH       chmod PATH to 04755
 *   chown PATH       chown PATH to the caller's own ids
 *   symlink T LINK   symlink LINK -> T
 *   link OLD NEW     hard link NEW to OLD
 *   mknod PATH       create a character device (1, 3) at PATH
 *   copy SRC DST     copy SRC to DST with mode 0755
 *   exec PATH        run PATH in a child; its output comes first, then
 *                    "exec PATH: exited N" or "exec PATH: <errno>"
 *   mmapexec PATH    map PATH with PROT_EXEC
 *   up N             chdir("..") N times ("up N: ok" or the first errno)
 *   cwd              print the working directory
 *   kill PID SIG     send SIG to PID
 *   pidfd PID        pidfd_open(PID)
 *   hostname         print the node name
 *   mounts           mount points of /proc/self/mountinfo, sorted
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void print_sorted(const char *what, char **names, size_t count)
{
    qsort(names, count, sizeof *names, by_name);
    printf("%s:", what);
    for (size_t i = 0; i < count; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
    fflush(stdout);
}

static void probe_read(const char *what, const char *path)
{
    char buf[4096];
    int fd = open(path, O_RDONLY);

    if (fd < 0 || read(fd, buf, sizeof buf) < 0) {
        report(what, -1);
    } else {
        say(what, "ok");
    }
    if (fd >= 0)
        close(fd);
}

static void probe_list(const char *what, const char *path)
{
    static char *names[4096];
    size_t count = 0;
    struct dirent *entry;
    DIR *dir = opendir(path);

    if (!dir) {
        report(what, -1);
        return;
    }
    while ((entry = readdir(dir)) && count < 4096) {
        if (strcmp(entry->d_name, ".") && strcmp(entry->d_name, ".."))
            names[count++] = strdup(entry->d_name);
    }
    closedir(dir);
    print_sorted(what, names, count);
}

static void probe_write(const char *what, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    if (fd < 0 || write(fd, "x", 1) != 1) {
        report(what, -1);
    } else {
        say(what, "ok");
    }
    if (fd >= 0)
        close(fd);
}

static void probe_copy(const char *what, const char *from, const char *to)
{
    char buf[65536];
    ssize_t n;
    int in = open(from, O_RDONLY), out = -1;

    if (in < 0) {
        report(what, -1);
        return;
    }
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (out < 0) {
        report(what, -1);
        close(in);
        return;
    }
    while ((n = read(in, buf, sizeof buf)) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            report(what, -1);
            close(in);
            close(out);
            return;
        }
    }
    close(in);
    report(what, close(out));
}

static void probe_exec(const char *what, const char *path)
{
    int status;
    pid_t pid = fork();

    if (pid < 0) {
        report(what, -1);
        return;
    }
    if (pid == 0) {
        char *argv[] = {(char *)path, NULL};
        char *envp[] = {"PATH=/usr/bin:/bin", NULL};

        execve(path, argv, envp);
        report(what, -1);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) < 0) {
        report(what, -1);
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return;
    if (WIFEXITED(status))
        printf("%s: exited %d\n", what, WEXITSTATUS(status));
    else
        printf("%s: signal %d\n", what, WTERMSIG(status));
    fflush(stdout);
}

static void probe_mmapexec(const char *what, const char *path)
{
    int fd = open(path, O_RDONLY);
    void *map;

    if (fd < 0) {
        report(what, -1);
        return;
    }
    map = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    report(what, map == MAP_FAILED ? -1 : 0);
    close(fd);
}

static void probe_up(const char *what, int times)
{
    for (int i = 0; i < times; i++) {
        if (chdir("..") != 0) {
            report(what, -1);
            return;
        }
    }
    say(what, "ok");
}

static void probe_mounts(const char *what)
{
    static char *points[1024];
    char line[4096];
    size_t count = 0;
    FILE *file = fopen("/proc/self/mountinfo", "r");

    if (!file) {
        report(what, -1);
        return;
    }
    while (fgets(line, sizeof line, file) && count < 1024) {
        char point[4096];

        if (sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1)
            points[count++] = strdup(point);
    }
    fclose(file);
    print_sorted(what, points, count);
}

int main(int argc, char **argv)
{
    char what[8192];
    int i = 1;

    while (i < argc) {
        const char *op = argv[i];
        const char *a = i + 1 < argc ? argv[i + 1] : "";
        const char *b = i + 2 < argc ? argv[i + 2] : "";
        int two = !strcmp(op, "symlink") || !strcmp(op, "link") || !strcmp(op, "copy") ||
                  !strcmp(op, "kill");
        int none = !strcmp(op, "cwd") || !strcmp(op, "hostname") || !strcmp(op, "mounts");

        if (none)
            snprintf(what, sizeof what, "%s", op);
        else if (two)
            snprintf(what, sizeof what, "%s %s %s", op, a, b);
        else
            snprintf(what, sizeof what, "%s %s", op, a);

        if (!strcmp(op, "read")) {
            probe_read(what, a);
        } else if (!strcmp(op, "list")) {
            probe_list(what, a);
        } else if (!strcmp(op, "write")) {
            probe_write(what, a);
        } else if (!strcmp(op, "mkdir")) {
            report(what, mkdir(a, 0755));
        } else if (!strcmp(op, "stat")) {
            struct stat st;

            if (lstat(a, &st) == 0)
                say(what, "ok");
            else
                report(what, -1);
        } else if (!strcmp(op, "chmod")) {
            report(what, chmod(a, 04755));
        } else if (!strcmp(op, "chown")) {
            report(what, chown(a, getuid(), getgid()));
        } else if (!strcmp(op, "symlink")) {
            report(what, symlink(a, b));
        } else if (!strcmp(op, "link")) {
            report(what, link(a, b));
        } else if (!strcmp(op, "mknod")) {
            report(what, mknod(a, S_IFCHR | 0666, makedev(1, 3)));
        } else if (!strcmp(op, "copy")) {
            probe_copy(what, a, b);
        } else if (!strcmp(op, "exec")) {
            probe_exec(what, a);
        } else if (!strcmp(op, "mmapexec")) {
            probe_mmapexec(what, a);
        } else if (!strcmp(op, "up")) {
            probe_up(what, atoi(a));
        } else if (!strcmp(op, "cwd")) {
            char cwd[4096];

            if (getcwd(cwd, sizeof cwd))
                say(what, cwd);
            else
                report(what, -1);
        } else if (!strcmp(op, "kill")) {
            report(what, kill((pid_t)atoi(a), atoi(b)));
        } else if (!strcmp(op, "pidfd")) {
            report(what, syscall(SYS_pidfd_open, atoi(a), 0));
        } else if (!strcmp(op, "hostname")) {
            struct utsname names;

            if (uname(&names) == 0)
                say(what, names.nodename);
            else
                report(what, -1);
        } else if (!strcmp(op, "mounts")) {
            probe_mounts(what);
        } else {
            fprintf(stderr, "probe: unknown operation %s\n", op);
            return 2;
        }
        i += none ? 1 : two ? 3 : 2;
    }
    return 0;
}
