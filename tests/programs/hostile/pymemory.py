#!/usr/bin/python3
"""Hostile: a Python memory bomb, keeping 1 MiB blocks forever. Only run
inside the sandbox with limits."""
blocks = []
while True:
    blocks.append(bytearray(1 << 20))
