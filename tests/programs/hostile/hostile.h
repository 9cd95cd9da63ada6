/* Shared helpers of the hostile programs. Every program prints one line per
 * attempt, "<what>: <outcome>", where the outcome is the symbolic errno of a
 * refused call (EPERM, ENOENT...) or "ok" / "SUCCEEDED" when it went
 * through, so the tests compare whole outputs. These programs attack the
 * sandbox and the host: only ever run them inside isobox, with limits. */
#ifndef HOSTILE_H
#define HOSTILE_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The symbolic name of an errno value, or its number. */
static inline const char *errname(int err)
{
    static char number[32];
    const char *name = strerrorname_np(err);

    if (name)
        return name;
    snprintf(number, sizeof number, "errno %d", err);
    return number;
}

/* Prints "<what>: <errno name>" after a failed call (ret < 0) or
 * "<what>: SUCCEEDED" after one that went through. Returns ret. */
static inline long report(const char *what, long ret)
{
    if (ret < 0)
        printf("%s: %s\n", what, errname(errno));
    else
        printf("%s: SUCCEEDED\n", what);
    fflush(stdout);
    return ret;
}

/* Prints "<what>: <text>". */
static inline void say(const char *what, const char *text)
{
    printf("%s: %s\n", what, text);
    fflush(stdout);
}

#endif
