"""pytest-benchmark helpers: after a run, print for each group how many times faster growcore
is than each named peer measured in the same run (ratio of medians).

Benchmarks are not part of the normal test run (`testpaths = ["tests"]`); run them with
`python -m pytest benches --benchmark-only`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    session = terminalreporter._session
    bs = getattr(session.config, "_benchmarksession", None)
    if bs is None or not bs.benchmarks:
        return
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for bench in bs.benchmarks:
        if bench.has_error or not bench.stats:
            continue
        who = bench.extra_info.get("impl", bench.name)
        groups[bench.group or bench.name][who] = bench.stats.median
    lines = ["", "ratios (peer median / growcore median; > 1 means growcore is faster):"]
    for group, medians in sorted(groups.items()):
        ours = medians.get("growcore")
        if ours is None:
            continue
        for peer, median in sorted(medians.items()):
            if peer != "growcore":
                lines.append(f"  {group}: growcore {ours * 1e3:.3f} ms, {peer} {median * 1e3:.3f} ms -> {median / ours:.1f}x")
    terminalreporter.write_line("\n".join(lines))
