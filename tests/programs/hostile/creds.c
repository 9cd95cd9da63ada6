/* creds: prints the credentials the program runs with, then tries to get
 * more:
 *   ids: <ruid> <euid> <suid> / <rgid> <egid> <sgid>
 *   groups: <number of supplementary groups>
 *   CapInh/CapPrm/CapEff/CapBnd/CapAmb/NoNewPrivs/Seccomp: from
 *   /proc/self/status
 * then one line per attempt (setuid(0), setgid(0), setgroups, raising a
 * capability...). Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static void status_fields(void)
{
    static const char *wanted[] = {"CapInh:", "CapPrm:", "CapEff:", "CapBnd:",
                                   "CapAmb:", "NoNewPrivs:", "Seccomp:"};
    char line[512];
    FILE *status = fopen("/proc/self/status", "r");

    if (!status) {
        report("status", -1);
        return;
    }
    while (fgets(line, sizeof line, status)) {
        for (size_t i = 0; i < sizeof wanted / sizeof *wanted; i++) {
            size_t len = strlen(wanted[i]);

            if (!strncmp(line, wanted[i], len)) {
                char value[128] = "";

                sscanf(line + len, "%127s", value);
                printf("%.*s: %s\n", (int)len - 1, wanted[i], value);
            }
        }
    }
    fclose(status);
    fflush(stdout);
}

int main(void)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid, root_group = 0;
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{0}};

    getresuid(&ruid, &euid, &suid);
    getresgid(&rgid, &egid, &sgid);
    printf("ids: %u %u %u / %u %u %u\n", ruid, euid, suid, rgid, egid, sgid);
    printf("groups: %d\n", getgroups(0, NULL));
    fflush(stdout);
    status_fields();

    /* Raw calls: each changes only this thread, which is all there is. */
    report("setuid 0", syscall(SYS_setuid, 0));
    report("setresuid 0", syscall(SYS_setresuid, 0, 0, 0));
    report("setgid 0", syscall(SYS_setgid, 0));
    report("setgroups 0", syscall(SYS_setgroups, 1, &root_group));
    data[0].effective = data[0].permitted = 1u << CAP_SYS_ADMIN;
    report("capset sys_admin", syscall(SYS_capset, &header, data));
    report("ambient raise", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0));
    report("clear no_new_privs", prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0));
    return 0;
}
