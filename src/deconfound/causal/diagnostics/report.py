"""Every diagnostic of one table at once (`diagnose`, the CLI's `deconfound diagnose` and the Diagnostics page),
and the table-level entry points that read a sample for the text-based checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

from ...data import Roles, Store, record_step
from .config import DiagnosticsConfig
from .entanglement import EntanglementResult, entanglement
from .leakage import LeakageResult, default_scores, temporal_leakage
from .markers import MarkerScanResult, scan_markers
from .time_patterns import TimePatternsResult, time_patterns


NO_SCORE_AUDITED = ("No score column was audited for temporal leakage yet: write a deconfounded outcome or score the "
                    "table with a reward model, then check whether its monthly means track the outcome.")


@dataclass
class DiagnosticsReport:
    """Every diagnostic of one table."""

    table: str
    rows: int
    time_patterns: TimePatternsResult
    markers: MarkerScanResult | None
    entanglement: EntanglementResult | None
    leakage: list[LeakageResult]
    seconds: dict[str, float] = field(default_factory=dict)

    def findings(self, leakage: Sequence[LeakageResult] | None = None) -> list[tuple[str, bool]]:
        """(verdict, needs attention) per diagnostic, in reading order. `leakage` replaces the report's own
        leakage audits (the Diagnostics page passes the audit its leakage section shows, so the two agree)."""
        leakage = self.leakage if leakage is None else list(leakage)
        tp = self.time_patterns
        out = [(tp.verdict, tp.applicable and any(t.get("material") for t in tp.tests.values()))]
        if self.markers is not None:
            out.append((self.markers.verdict, not self.markers.spurious().empty))
        if self.entanglement is not None:
            out.append((self.entanglement.verdict, self.entanglement.entangled))
        out += [(r.verdict, r.leaks) for r in leakage]
        if not leakage:
            out.append((NO_SCORE_AUDITED, False))
        return out

    def verdicts(self) -> list[str]:
        """One sentence per diagnostic, in reading order."""
        return [verdict for verdict, _ in self.findings()]

    def summary(self, top: int = 10) -> str:
        """Verdicts, then the top markers."""
        lines = [f"Diagnostics of '{self.table}' ({self.rows:,} rows)", ""] + [f"- {v}" for v in self.verdicts()]
        if self.markers is not None:
            for title, frame in (("spurious markers", self.markers.spurious()),
                                 ("robust markers", self.markers.robust())):
                if len(frame):
                    lines += ["", f"top {title}:"]
                    lines += [f"  {r.marker:32s} lift {r.lift:+.4f} → {r.adjusted_lift:+.4f} after controlling"
                              for r in frame.head(top).itertuples()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """All result dicts."""
        return {"table": self.table, "rows": self.rows, "verdicts": self.verdicts(),
                "time_patterns": self.time_patterns.to_dict(),
                "markers": self.markers.to_dict() if self.markers else None,
                "entanglement": self.entanglement.to_dict() if self.entanglement else None,
                "leakage": [r.to_dict() for r in self.leakage], "seconds": self.seconds}


def diagnose(store: Store, table: str, config: DiagnosticsConfig | None = None, scores: Sequence[str] | None = None,
             progress=None, record: bool = True) -> DiagnosticsReport:
    """Run every diagnostic on a tagged table (large tables are sampled for the text-based checks). With `record`
    the run is recorded in the store (`data.record_step`: the home page ticks Diagnostics from that record)."""
    config = config or DiagnosticsConfig()
    roles = store.require_roles(table)
    rows = store.row_count(table)
    seconds: dict[str, float] = {}

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        seconds[name] = round(time.perf_counter() - start, 3)
        if progress:
            progress(name)
        return out

    times = timed("time_patterns", lambda: time_patterns(store, table, roles, config))
    markers = timed("markers", lambda: scan_markers_table(store, table, roles, config))
    tangle = timed("entanglement", lambda: entanglement_table(store, table, roles, config))
    audit = scores if scores is not None else default_scores(store, table, roles)
    leakage = timed("leakage", lambda: [temporal_leakage(store, table, roles, s, config) for s in audit])
    report = DiagnosticsReport(table=table, rows=rows, time_patterns=times, markers=markers, entanglement=tangle,
                               leakage=leakage, seconds=seconds)
    if record:
        record_diagnostics(store, report, roles)
    return report


def record_diagnostics(store: Store, report: DiagnosticsReport, roles: Roles | None = None) -> None:
    """Record in the store that the diagnostics ran on the report's table (with the table's current roles)."""
    record_step(store, report.table, "diagnostics", roles=roles,
                detail={"rows": report.rows, "attention": sum(flag for _, flag in report.findings())})


def scan_markers_table(store: Store, table: str, roles: Roles, config: DiagnosticsConfig | None = None) -> MarkerScanResult:
    """`scan_markers` on the table, sampled to `marker_rows` rows."""
    config = config or DiagnosticsConfig()
    rows = store.row_count(table)
    cols = list(dict.fromkeys([roles.text, roles.outcome, *roles.confounders, *roles.instruments, *roles.controls]))
    sample = config.marker_rows if rows > config.marker_rows else None
    data = store.read_frame(table, cols, sample_rows=sample, seed=config.seed)
    return scan_markers(data, roles, config, rows_total=rows)


def entanglement_table(store: Store, table: str, roles: Roles, config: DiagnosticsConfig | None = None,
                       progress=None) -> EntanglementResult:
    """`entanglement` on a random sample of the table."""
    config = config or DiagnosticsConfig()
    rows = store.row_count(table)
    limit = config.entanglement_rows or (3000 if config.embeddings == "minilm" else 5000)
    cols = list(dict.fromkeys(c for c in [roles.text, *roles.confounders, *roles.instruments, roles.truth] if c))
    data = store.read_frame(table, cols, sample_rows=limit if rows > limit else None, seed=config.seed)
    return entanglement(data, roles, config, rows_total=rows, progress=progress)
