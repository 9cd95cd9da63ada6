/* net OP ARG... [OP ARG...]: network probes, one line each.
 *   tcp IP PORT      connect() over TCP
 *   udp IP PORT      sendto() one datagram
 *   abstract NAME    connect() to the abstract unix socket @NAME
 *   ifaces           interfaces and whether they are up
 * Hostile: only run inside the sandbox with limits. */
#include "hostile.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

static int inet_socket(int type, const char *ip, const char *port, struct sockaddr_in *addr)
{
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_port = htons((unsigned short)atoi(port));
    inet_pton(AF_INET, ip, &addr->sin_addr);
    return socket(AF_INET, type | SOCK_CLOEXEC, 0);
}

int main(int argc, char **argv)
{
    char what[512];
    int i = 1;

    while (i < argc) {
        const char *op = argv[i];
        const char *a = i + 1 < argc ? argv[i + 1] : "";
        const char *b = i + 2 < argc ? argv[i + 2] : "";
        struct sockaddr_in addr;
        int fd;

        if (!strcmp(op, "tcp") || !strcmp(op, "udp")) {
            int tcp = !strcmp(op, "tcp");

            snprintf(what, sizeof what, "%s %s:%s", op, a, b);
            fd = inet_socket(tcp ? SOCK_STREAM : SOCK_DGRAM, a, b, &addr);
            if (fd < 0)
                report(what, -1);
            else if (tcp)
                report(what, connect(fd, (struct sockaddr *)&addr, sizeof addr));
            else
                report(what, sendto(fd, "x", 1, 0, (struct sockaddr *)&addr, sizeof addr));
            if (fd >= 0)
                close(fd);
            i += 3;
        } else if (!strcmp(op, "abstract")) {
            struct sockaddr_un unix_addr = {.sun_family = AF_UNIX};
            size_t len = strlen(a);

            snprintf(what, sizeof what, "abstract @%s", a);
            if (len > sizeof unix_addr.sun_path - 1)
                len = sizeof unix_addr.sun_path - 1;
            memcpy(unix_addr.sun_path + 1, a, len);
            fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            report(what, fd < 0 ? -1
                                : connect(fd, (struct sockaddr *)&unix_addr,
                                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                                                      1 + len)));
            if (fd >= 0)
                close(fd);
            i += 2;
        } else if (!strcmp(op, "ifaces")) {
            struct if_nameindex *names = if_nameindex(), *name;

            fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            printf("ifaces:");
            for (name = names; name && name->if_name; name++) {
                struct ifreq request = {0};
                int up = 0;

                snprintf(request.ifr_name, sizeof request.ifr_name, "%s", name->if_name);
                if (fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &request) == 0)
                    up = (request.ifr_flags & IFF_UP) != 0;
                printf(" %s(%s)", name->if_name, up ? "up" : "down");
            }
            printf("\n");
            fflush(stdout);
            if (names)
                if_freenameindex(names);
            if (fd >= 0)
                close(fd);
            i += 1;
        } else {
            fprintf(stderr, "net: unknown operation %s\n", op);
            return 2;
        }
    }
    return 0;
}
