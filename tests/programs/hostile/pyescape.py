#!/usr/bin/python3
"""Hostile: a Python program looking for a way out: climbs out of /box,
lists what the root holds, reads host secrets, asks for root, and walks
/proc for other processes. One line each. Only run inside the sandbox
with limits."""
import os

def attempt(what, action):
    try:
        value = action()
    except Exception as error:  # any refusal is an answer here
        print(f"{what}: {type(error).__name__}", flush=True)
    else:
        print(f"{what}: {value}", flush=True)

for _ in range(20):
    os.chdir("..")
attempt("cwd", os.getcwd)
attempt("root", lambda: " ".join(sorted(os.listdir("/"))))
attempt("read etc/passwd", lambda: len(open("etc/passwd").read()))
attempt("read /etc/shadow", lambda: len(open("/etc/shadow").read()))
attempt("read /proc/1/environ", lambda: len(open("/proc/1/environ", "rb").read()))
attempt("setuid 0", lambda: os.setuid(0))
attempt(
    "other processes",
    lambda: sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()),
)
