"""The publisher: reconcile every tenant's granted skills into its Anthropic organisation.

`desired` computes what should be live, `planner` compares it with what is, `applier` runs the
plan item by item against a publish target (`targets`: the seam, and `org-skills` behind it),
`reconcile` ties them together for one run, `jobs` is the durable queue (`publish_job`) that
the CLI and the daemon use, and `job_run` runs one claimed job.
"""

from claresia_sync.publish.applier import DEFAULT_CONCURRENCY, Applier, ItemResult
from claresia_sync.publish.desired import DesiredSkill, OrgDesired, desired_state
from claresia_sync.publish.job_run import JobOutcome, RetryPolicy, run_job, run_next_job
from claresia_sync.publish.jobs import ClaimedJob, JobStatus, claim, enqueue
from claresia_sync.publish.planner import Op, OrgPlan, Plan, PlanItem, plan_org
from claresia_sync.publish.reconcile import RunResult, reconcile
from claresia_sync.publish.targets import Acl

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Acl",
    "Applier",
    "ClaimedJob",
    "DesiredSkill",
    "ItemResult",
    "JobOutcome",
    "JobStatus",
    "Op",
    "OrgDesired",
    "OrgPlan",
    "Plan",
    "PlanItem",
    "RetryPolicy",
    "RunResult",
    "claim",
    "desired_state",
    "enqueue",
    "plan_org",
    "reconcile",
    "run_job",
    "run_next_job",
]
