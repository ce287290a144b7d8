"""What a conversion produced, and how close it stays to FP32: the report ``edged calibrate``
and ``edged convert`` print."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edged.tools.agreement import Agreement


@dataclass
class Report:
    """What a conversion produced and how close it stays to FP32."""

    precision: str
    source: Path
    output: Path
    source_bytes: int
    output_bytes: int
    agreement: Agreement | None
    agreement_frames: str = ""
    method: str | None = None
    trials: dict[str, Agreement] = field(default_factory=dict)
    trial_seconds: dict[str, float] = field(default_factory=dict)
    calibration_frames: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def size_ratio(self) -> float:
        return self.output_bytes / self.source_bytes

    def summary(self) -> str:
        mb = 1e6
        lines = [
            f"{self.precision.upper()}: {self.output}",
            f"  size: {self.source_bytes / mb:.1f} MB FP32 → {self.output_bytes / mb:.1f} MB "
            f"({self.size_ratio:.0%})",
        ]
        if self.method:
            lines.append(
                f"  calibration: {self.method}, {self.calibration_frames} frames"
                + (f" (auto, chose of {', '.join(self.trials)})" if len(self.trials) > 1 else "")
            )
        for name, a in self.trials.items():
            if len(self.trials) > 1:
                took = self.trial_seconds.get(name, 0.0)
                lines.append(f"    {name:<10} {a.summary()}  [{took:.0f} s]")
        if self.agreement is not None:
            lines.append(f"  agreement with FP32 ({self.agreement_frames}):")
            lines.append(f"    {self.agreement.summary()}")
        else:
            lines.append("  agreement with FP32: not measured (no frames given)")
        lines.extend(f"  {n}" for n in self.notes)
        lines.append(f"  took {self.seconds:.1f} s")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["source"], d["output"] = str(self.source), str(self.output)
        return d
