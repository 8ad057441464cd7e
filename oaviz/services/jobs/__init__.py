"""Long work as jobs: the same `oaviz …` command a user would type, in its own process.

A job is a run folder. ``job.json`` (written by ``control``) records what was
started (argv, pid, start time, kind, expected output); the command itself
appends progress events to ``events.jsonl`` (``oaviz.training.events``) and its
stdout+stderr go to ``log.txt``. Everything a page shows is read back from
those files (``status``), so any number of app sessions (or a restarted
server) see the same jobs, and a job never runs inside a Streamlit rerun.

    process   run folders, job.json, log tail, /proc probing of the job's process
    status    Job, read_job, list_jobs: the status rules
    control   start_command / start_oaviz, cancel
    limits    caps on running jobs (per owner, in total), one writer per output, the app's policy
    commands  argv of `oaviz train`, `oaviz synth`, `oaviz import`, and starting them
    curves    loss and epoch frames for the loss plot
"""

from oaviz.services.jobs.commands import (
    import_args, start_import, start_synth, start_training, synth_args, train_args,
)
from oaviz.services.jobs.control import cancel, start_command, start_oaviz
from oaviz.services.jobs.curves import epoch_curve, loss_curve
from oaviz.services.jobs.limits import JobLimits, JobRefused, running_jobs, set_policy
from oaviz.services.jobs.process import _PROCS, JOB_FILE, LOG_FILE, log_tail, new_run_dir
from oaviz.services.jobs.status import STALE_AFTER_S, STATUSES, Job, list_jobs, read_job
from oaviz.training.events import EVENTS_FILE, read_events

__all__ = [
    "EVENTS_FILE", "JOB_FILE", "LOG_FILE", "STALE_AFTER_S", "STATUSES", "Job", "JobLimits", "JobRefused", "_PROCS",
    "cancel", "epoch_curve", "import_args", "list_jobs", "log_tail", "loss_curve", "new_run_dir", "read_events",
    "read_job", "running_jobs", "set_policy", "start_command", "start_import", "start_oaviz", "start_synth",
    "start_training", "synth_args", "train_args",
]
