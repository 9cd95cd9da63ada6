#!/bin/sh
# ordinary.sh: an ordinary shell script, as a grader would run one: reads
# numbers from /box/input.txt, writes their sorted list and their sum to
# /box/output.txt, and says so on stdout.
set -eu
sort -n /box/input.txt > /box/sorted.txt
sum=0
while read -r number; do
    sum=$((sum + number))
done < /box/input.txt
{
    tr '\n' ' ' < /box/sorted.txt
    echo
    echo "sum $sum"
} > /box/output.txt
rm /box/sorted.txt
echo "done $(wc -l < /box/input.txt) lines"
