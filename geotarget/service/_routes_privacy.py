"""Erasure over HTTP: ``POST /v1/erasures`` forgets people (the right to be forgotten).

This is an administrative action: only keys with the ``admin`` scope may call
it (403 for any other key).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from . import _deps
from ._scopes import require_scope

router = APIRouter(tags=["privacy"], dependencies=[require_scope("admin")])

_Value = Field(default_factory=list, max_length=10_000)


class ErasureRequest(BaseModel):
    """People to erase: customer ids, emails, phones (raw or SHA-256 hex)."""

    model_config = ConfigDict(extra="forbid")
    ids: list[str] = _Value
    emails: list[str] = _Value
    phones: list[str] = _Value
    phone_region: str = Field("US", min_length=2, max_length=2, description="Country of phones without a country code.")


class ErasureResult(BaseModel):
    """What the erasure removed."""

    customers: int = Field(description="Customers found and removed.")
    removed: dict[str, int] = Field(description="Rows removed per table.")
    tombstones: int = Field(description="New salted-hash tombstones that keep these people out of later ingests.")


@router.post("/erasures", response_model=ErasureResult, summary="Erase people (admin)")
def erase(body: ErasureRequest, eng=Depends(_deps.engine)) -> ErasureResult:
    """Remove people from every table and cache, keeping only salted-hash tombstones. Idempotent."""
    report = eng.erase(ids=body.ids, emails=body.emails, phones=body.phones, phone_region=body.phone_region)
    return ErasureResult(customers=report.customers, removed=report.removed, tombstones=report.tombstones)
