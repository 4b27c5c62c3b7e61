"""Measure what a campaign did: outcomes, the frozen assignment, lift readouts, holdout planning.

The loop: :meth:`geotarget.Engine.launch_campaign` freezes who is in
treatment and who in control; :meth:`geotarget.Engine.ingest_outcomes` loads
what customers did; :meth:`geotarget.Engine.lift` compares the groups
(intent-to-treat, see :mod:`geotarget.measure.readout`);
:meth:`geotarget.Engine.plan_holdout` sizes the control group before launch.
"""

from __future__ import annotations

from geotarget.measure.assignment import Launch
from geotarget.measure.planning import HoldoutPlan, plan_holdout_for
from geotarget.measure.readout import KEYS, LiftResult
from geotarget.measure.tables import PERSONAL_TABLES, forget_customers

__all__ = ["KEYS", "PERSONAL_TABLES", "HoldoutPlan", "Launch", "LiftResult", "forget_customers", "plan_holdout_for"]
