"""The reconcile loop's one pass, the targets it reconciles toward, and the retry policy."""

from reconciler.reconcile.core import Reconciler
from reconciler.reconcile.target import GitTarget, TargetProvider
from reconciler.reconcile.worktree import WorkTreeTarget

__all__ = ["GitTarget", "Reconciler", "TargetProvider", "WorkTreeTarget"]
