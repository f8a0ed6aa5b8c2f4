"""The reconcile loop's one pass, and the targets it reconciles toward."""

from reconciler.reconcile.core import Reconciler
from reconciler.reconcile.target import GitTarget, Target, TargetView, WorkTreeTarget

__all__ = ["GitTarget", "Reconciler", "Target", "TargetView", "WorkTreeTarget"]
