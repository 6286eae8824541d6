"""Work per call that does not drift with the host: Python function calls, counted exactly.

CPU time per call swings +-10-20 % between identical runs on a shared 2-core VM, so a change
of a few percent cannot be seen in it (see ``ab.py``). The number of Python function calls
(and C functions called from Python) the daemon makes per call is stable to about +-0.5 %
between runs. :class:`CallCounter` counts them with cProfile during one stage. cProfile
roughly doubles the cost of each call, so it reports no times. A "call" is one finished call
record: ``callcenter.records.cdr.finish`` runs once per call.
"""

from __future__ import annotations

import cProfile
import pstats

from stack_sampler import short_path

_PER_CALL = ("/callcenter/records/cdr.py", "finish")


class CallCounter:
    """``start()`` / ``stop()`` around a stage; :meth:`report` lists the calls per call."""

    title = "Python function calls per call"

    def __init__(self) -> None:
        self._profile = cProfile.Profile()

    def start(self) -> None:
        self._profile.enable()

    def stop(self) -> None:
        self._profile.disable()

    def report(self, top: int) -> str:
        stats: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
        stats = pstats.Stats(self._profile).stats  # type: ignore[attr-defined]
        calls = sum(
            v[1]
            for (path, _line, name), v in stats.items()
            if (path.endswith(_PER_CALL[0]) and name == _PER_CALL[1])
        )
        if not calls:
            return "no call finished during the counted stage"
        total = sum(v[1] for v in stats.values())
        ours = sum(v[1] for (path, _l, _n), v in stats.items() if "/callcenter/" in path)
        lines = [
            f"{total / calls:,.0f} function calls per call ({calls} calls finished); "
            f"{ours / calls:,.0f} of them to callcenter's own functions",
            f"top {top} by calls per call:",
        ]
        ranked = sorted(stats.items(), key=lambda kv: -kv[1][1])[:top]
        for (path, line, name), v in ranked:
            where = name if path == "~" else f"{short_path(path)}:{line} {name}"
            lines.append(f"  {v[1] / calls:8.1f}  {where}")
        return "\n".join(lines)
