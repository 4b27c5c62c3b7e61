"""The report of one ingest: rows read, loaded and rejected, and why."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["IngestReport"]


@dataclass
class IngestReport:
    """What one ingest did. ``read == loaded + rejected`` always holds."""

    kind: str
    source: str
    read: int = 0
    loaded: int = 0
    rejected: int = 0
    inserted: int = 0
    updated: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    invalid_emails: int = 0
    invalid_phones: int = 0
    consent_unrecognised: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        """Throughput of the whole ingest."""
        return self.read / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        lines = [
            f"{self.kind} from {self.source}: read {self.read:,}, loaded {self.loaded:,} "
            f"({self.inserted:,} new, {self.updated:,} updated), rejected {self.rejected:,} "
            f"in {self.seconds:.2f} s"
        ]
        for reason, count in sorted(self.reasons.items(), key=lambda kv: -kv[1]):
            lines.append(f"  rejected {count:,}: {reason}")
        if self.invalid_emails or self.invalid_phones:
            lines.append(f"  dropped from their rows: {self.invalid_emails:,} invalid email(s), "
                         f"{self.invalid_phones:,} invalid phone number(s)")
        if self.consent_unrecognised:
            shown = ", ".join(f"{v!r} x{n:,}" for v, n in sorted(self.consent_unrecognised.items(),
                                                                    key=lambda kv: -kv[1])[:8])
            lines.append(f"  {sum(self.consent_unrecognised.values()):,} row(s) with an unrecognised consent "
                         f"value counted as opted out: {shown}")
        lines.extend(f"  {note}" for note in self.notes)
        return "\n".join(lines)
