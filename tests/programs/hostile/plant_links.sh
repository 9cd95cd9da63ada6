#!/bin/sh
# plant_links.sh HOST_DIR: plant symlinks in /box that point at a host
# directory and at a file in it, at the top and one level down, so that a
# keeper that follows links while cleaning up or changing owners would
# damage the host. Then try to use them from inside: "<what>: ok" or
# "<what>: refused". Hostile: only run inside the sandbox with limits.
target=$1
ln -s "$target" /box/dir-link
ln -s "$target/precious" /box/file-link
mkdir /box/sub
ln -s "$target" /box/sub/dir-link
ln -s / /box/root-link
if cat /box/file-link >/dev/null 2>&1; then echo "read file-link: ok"; else echo "read file-link: refused"; fi
if ls /box/dir-link/ >/dev/null 2>&1; then echo "list dir-link: ok"; else echo "list dir-link: refused"; fi
if echo x > /box/dir-link/planted 2>/dev/null; then echo "write dir-link: ok"; else echo "write dir-link: refused"; fi
echo planted
