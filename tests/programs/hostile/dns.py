#!/usr/bin/python3
"""Hostile: tries to resolve names and to read the resolver's
configuration; one line each, "<what>: <exception name>" or "<what>: ok".
Only run inside the sandbox with limits."""
import socket

def attempt(what, action):
    try:
        action()
    except Exception as error:  # any refusal is an answer here
        print(f"{what}: {type(error).__name__}", flush=True)
    else:
        print(f"{what}: ok", flush=True)

attempt("resolve example.com", lambda: socket.getaddrinfo("example.com", 80))
attempt("resolve localhost", lambda: socket.getaddrinfo("localhost", 80))
attempt("read /etc/resolv.conf", lambda: open("/etc/resolv.conf").read())
attempt("read /etc/hosts", lambda: open("/etc/hosts").read())
attempt(
    "udp 8.8.8.8:53",
    lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("8.8.8.8", 53)),
)
