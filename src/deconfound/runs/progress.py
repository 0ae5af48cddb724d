"""Progress of a run: stage callbacks turned into status.json (throttled, atomic), metrics.jsonl lines and an ETA.
"""

from __future__ import annotations

import logging
import time

from .folder import RunFolder, now_iso

log = logging.getLogger(__name__)
ETA_SMOOTHING = 0.2  # share of the way a new estimate moves the shown one (status is written about once a second)


# ------------------------------------------------------------------ progress
class RunProgress:
    """Turns stage callbacks into status.json (throttled, atomic), metrics.jsonl and an ETA.

    `plan` maps each stage to its expected cost; overall progress is the cost-weighted share done.
    Calling it as `progress(stage, step, total, metrics)` is the training callback: it raises
    `train.Cancelled` once `stop` is set, so trainers stop at their next step with a checkpoint.
    """

    def __init__(self, folder: RunFolder, plan: dict[str, float], stop=None, enabled: bool = True,
                 callback=None, min_interval_s: float = 1.0):
        self.folder, self.plan, self.stop, self.enabled = folder, plan, stop, enabled
        self.callback, self.min_interval_s = callback, min_interval_s
        self.total_cost = sum(plan.values()) or 1.0
        self.done: set[str] = set()
        self.current: str | None = None
        self.fraction = 0.0
        self.started = time.monotonic()
        self.start_progress: float | None = None
        self.last_write = 0.0
        self._eta: float | None = None
        self._eta_at = self.started
        self.status = folder.status() if enabled else {}

    def check_stop(self) -> None:
        """Raise `train.Cancelled` when a stop was requested (SIGTERM)."""
        if self.stop is not None and self.stop.is_set():
            from ..train import Cancelled
            raise Cancelled("stop requested")

    @property
    def progress(self) -> float:
        done = sum(self.plan.get(s, 0.0) for s in self.done)
        if self.current and self.current not in self.done:
            done += self.plan.get(self.current, 0.0) * self.fraction
        return min(1.0, done / self.total_cost)

    def begin(self, stage: str) -> None:
        """A stage starts."""
        self.check_stop()
        self.current, self.fraction = stage, 0.0
        self.status.pop("stage_step", None)
        self.status.pop("stage_total", None)
        log.info("stage %s", stage)
        self.write(force=True, message=f"running {stage}")

    def finish(self, stage: str, skipped: bool = False) -> None:
        """A stage is done (or was done before a resume)."""
        self.done.add(stage)
        self.fraction = 0.0
        if skipped:
            log.info("skip stage %s (finished before)", stage)
        if self.start_progress is None and skipped:
            return
        self.write(force=True)

    def __call__(self, stage: str, step: int, total: int, metrics: dict | None = None) -> None:
        if total and total > 0:
            self.fraction = max(0.0, min(1.0, step / total))
        if metrics and self.enabled and self.current and self.current.split("/")[0] in ("sft", "rl", "dpo", "rewards"):
            record = {"stage": self.current, "step": int(step), "total": int(total or 0), "time": time.time()}
            record.update({k: v for k, v in metrics.items() if k not in ("step",)})
            self.folder.append_metrics(record)
        if self.callback is not None:
            self.callback(self.current or stage, step, total, metrics or {})
        self.write(force=False, step=step, total=total)
        self.check_stop()

    def eta(self) -> float | None:
        """Seconds left. The plan's seconds for what remains (per-unit costs measured on the preset's reference
        machine, `presets.PRESETS`) are the first estimate; as work gets done, they are scaled by this session's
        pace against the plan (fully once a minute or a tenth of the planned work is done), and the estimate
        moves a fifth of the way to each new value, so one slow step does not swing it."""
        if self.start_progress is None:
            return None
        now = time.monotonic()
        remaining = self.total_cost * (1.0 - self.progress)
        planned_done = (self.progress - self.start_progress) * self.total_cost
        trust = min(1.0, planned_done / max(60.0, 0.1 * self.total_cost))
        pace = (now - self.started) / planned_done if planned_done > 0 else 1.0
        estimate = remaining * ((1.0 - trust) + trust * pace)
        if self._eta is not None:
            aged = max(0.0, self._eta - (now - self._eta_at))  # the last estimate, counted down since
            estimate = aged + ETA_SMOOTHING * (estimate - aged)
        self._eta, self._eta_at = estimate, now
        return max(0.0, estimate)

    def write(self, force: bool = False, message: str | None = None, **extra) -> None:
        """Update status.json (at most once per `min_interval_s` unless forced)."""
        if self.start_progress is None:
            self.start_progress = self.progress
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last_write < self.min_interval_s:
            return
        self.last_write = now
        self.status.update(state="running", progress=round(self.progress, 4), stage=self.current or "",
                           updated_at=now_iso(), eta_s=_round(self.eta()),
                           stages_done=len(self.done), stages_total=len(self.plan))
        if message:
            self.status["message"] = message
        if "step" in extra:
            self.status["stage_step"], self.status["stage_total"] = extra["step"], extra["total"]
        self.folder.write_status(self.status)


def _round(value):
    return None if value is None else round(float(value), 1)
