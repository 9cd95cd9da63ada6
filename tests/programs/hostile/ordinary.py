#!/usr/bin/python3
"""An ordinary Python program, as a grader would run one: imports a good part
of the standard library, reads /box/input.txt, writes /box/output.json."""
import collections
import datetime
import hashlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile

with open("/box/input.txt", encoding="utf-8") as source:
    numbers = [int(line) for line in source if re.fullmatch(r"-?\d+\n?", line)]
counts = collections.Counter(n % 3 for n in numbers)
with tempfile.TemporaryDirectory() as scratch:
    scratch_file = os.path.join(scratch, "numbers")
    with open(scratch_file, "w", encoding="utf-8") as out:
        out.write(" ".join(map(str, numbers)))
    echoed = subprocess.run(
        ["/bin/cat", scratch_file], capture_output=True, text=True, check=True
    ).stdout
result = {
    "sum": sum(numbers),
    "mean": statistics.mean(numbers),
    "hypot": round(math.hypot(*numbers[:2]), 6),
    "mod3": {str(k): v for k, v in sorted(counts.items())},
    "sha256": hashlib.sha256(echoed.encode()).hexdigest(),
    "year_ok": datetime.date.today().year > 2000,
    "cwd": os.getcwd(),
    "python": sys.version_info[0],
}
with open("/box/output.json", "w", encoding="utf-8") as out:
    json.dump(result, out, sort_keys=True)
print("done", len(numbers))
