"""The move benchmark (tests/bench/move_downtime.py) runs end to end at a tiny size for both methods.

Not a measurement: the figures at 100 MB and 1 GB come from running the script by hand (docs/moves.md).
This only keeps the script working and its JSON in the shape the closing notes quote.
"""

from __future__ import annotations

import json
import subprocess
import sys

from fleet.paths import PROJECT_ROOT


def test_the_benchmark_reports_both_methods_without_losing_a_row():
    result = subprocess.run(
        [sys.executable, "tests/bench/move_downtime.py", "--size-mb", "2", "--method", "both", "--json"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [run["method"] for run in runs] == ["logical", "dump"]
    for run in runs:
        assert {"size_mb", "method", "downtime_s", "copy_s", "rows_lost"} <= set(run)
        assert run["rows_lost"] == 0 and run["sequences_ahead"] is True and run["downtime_s"] > 0
