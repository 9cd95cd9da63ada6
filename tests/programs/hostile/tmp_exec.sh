#!/bin/sh
# tmp_exec.sh MARKER: write a script and a copy of /bin/true into /tmp and
# /dev/shm and try to run them, directly and through the dynamic loader.
# One line each: "<what>: ran" or "<what>: refused".
# Hostile: only run inside the sandbox with limits.
marker=$1
loader=/lib64/ld-linux-x86-64.so.2
for dir in /tmp /dev/shm; do
    printf '#!/bin/sh\necho script-output\n' > "$dir/$marker.sh"
    chmod 755 "$dir/$marker.sh"
    cp /bin/true "$dir/$marker-true"
    chmod 755 "$dir/$marker-true"
    if out=$("$dir/$marker.sh" 2>/dev/null) && [ "$out" = script-output ]; then
        echo "$dir script: ran"
    else
        echo "$dir script: refused"
    fi
    if "$dir/$marker-true" 2>/dev/null; then
        echo "$dir binary: ran"
    else
        echo "$dir binary: refused"
    fi
    if "$loader" "$dir/$marker-true" 2>/dev/null; then
        echo "$dir loader: ran"
    else
        echo "$dir loader: refused"
    fi
done
