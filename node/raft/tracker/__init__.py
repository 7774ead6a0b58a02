"""Leader-side replication tracking: per-follower `Progress`, `Inflights` and the tracker."""

from node.raft.tracker.inflights import Inflights
from node.raft.tracker.progress import Progress, ProgressState
from node.raft.tracker.tracker import ProgressTracker

__all__ = ["Inflights", "Progress", "ProgressState", "ProgressTracker"]
