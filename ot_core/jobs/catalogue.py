"""The job catalogue (``OT_JOBS``, else the one shipped in ``ot_core/defaults/jobs.yml``): per
job its notebook, cron schedule, defaults, timeout and overlap policy.

A notebook path is a file name inside the job notebooks folder: ``OT_NOTEBOOKS_DIR`` when set,
else the folder named by the catalogue's optional ``notebooks_dir`` (relative to the
catalogue file), else the notebooks shipped with the package.

It is the one place schedules are written down
(docs/legacy-defects.md#11-schedule-docstring-contradicting-the-schedule): the README
block, ``ot jobs``, ``ot crontab`` and the Airflow DAG example are all generated from it.
A wrong entry stops with one message naming the job and the key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ot_core.config import IDENTIFIER, safe_load
from ot_core.errors import ConfigError, JobError
from ot_core.resources import default_catalogue_path, job_notebooks_dir

DEFAULT_CATALOGUE = default_catalogue_path()


class JobSpec(BaseModel):
    """One job. ``overlap`` false (the default) means a run never starts while one runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    notebook: str
    schedule: str
    description: str = ""
    timeout_seconds: int = Field(3600, ge=10, le=7 * 86400)
    overlap: bool = False
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        if not croniter.is_valid(v) or len(v.split()) != 5:
            raise ValueError(f"{v!r} is not a 5-field cron expression (e.g. '*/15 * * * *')")
        return v

    @field_validator("notebook")
    @classmethod
    def _notebook(cls, v: str) -> str:
        if not v.endswith(".ipynb") or Path(v).is_absolute() or ".." in Path(v).parts:
            raise ValueError(f"{v!r} must be a .ipynb path inside the notebooks folder")
        return v

    @field_validator("parameters")
    @classmethod
    def _params(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k in v:
            if not IDENTIFIER.match(str(k)):
                raise ValueError(f"parameter name {k!r} is not a plain identifier")
        return v

    notebooks_dir: str | None = None  # set by the catalogue that holds this job

    @property
    def notebook_path(self) -> Path:
        if os.environ.get("OT_NOTEBOOKS_DIR") or not self.notebooks_dir:
            return job_notebooks_dir() / self.notebook
        return Path(self.notebooks_dir) / self.notebook


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    jobs: dict[str, JobSpec]

    def job(self, name: str) -> JobSpec:
        if name not in self.jobs:
            raise JobError(f"no job {name!r} in the catalogue; known jobs: {', '.join(self.jobs)}")
        return self.jobs[name]


def catalogue_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("OT_JOBS") or DEFAULT_CATALOGUE)


def load_catalogue(path: str | os.PathLike | None = None) -> Catalogue:
    p = catalogue_path(path)
    try:
        data = safe_load(p.read_text())
    except OSError as e:
        raise ConfigError(f"job catalogue {str(p)!r} cannot be read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    base = None
    if isinstance(data, dict) and data.get("notebooks_dir"):
        base = str((p.parent / str(data["notebooks_dir"])).resolve())
    return parse_catalogue(data, str(p), notebooks_dir=base)


def parse_catalogue(data: Any, source: str = "jobs.yml", *,
                    notebooks_dir: str | None = None) -> Catalogue:
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict) or not data["jobs"]:
        raise ConfigError(f"{source}: the top level must be a mapping with a non-empty 'jobs' mapping")
    unknown = sorted(set(data) - {"jobs", "notebooks_dir"})
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {unknown[0]!r}; allowed: jobs, notebooks_dir")
    jobs = {}
    for name, body in data["jobs"].items():
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise ConfigError(f"{source}: job name {name!r} is not allowed: use lower-case "
                              "letters, digits and _")
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: job {name!r}: expected a mapping of keys")
        try:
            jobs[name] = JobSpec.model_validate({**body, "name": name,
                                                  "notebooks_dir": notebooks_dir})
        except ValidationError as e:
            first = e.errors()[0]
            key = ".".join(str(p) for p in first["loc"]) or "(job)"
            msg = first["msg"].removeprefix("Value error, ")
            value = first.get("input")
            shown = "" if isinstance(value, dict) else f" = {value!r}"
            raise ConfigError(f"{source}: job {name!r}: {key}{shown}: {msg}") from None
    return Catalogue(jobs=jobs)


def describe_schedule(expr: str) -> str:
    """A short English reading of the cron expressions the catalogue uses."""
    minute, hour, dom, month, dow = expr.split()
    if expr == "* * * * *":
        return "every minute"
    if minute.startswith("*/") and hour == dom == month == dow == "*":
        return f"every {minute[2:]} minutes"
    if minute.isdigit() and hour.isdigit() and month == "*" and dow == "*":
        at = f"{int(hour):02d}:{int(minute):02d} UTC"
        if dom == "*":
            return f"daily at {at}"
        if dom.isdigit():
            return f"monthly on day {dom} at {at}"
    return f"cron {expr} (UTC)"


def markdown(cat: Catalogue | None = None) -> str:
    """The README's job table (between ``<!-- jobs:start -->`` and ``<!-- jobs:end -->``)."""
    cat = cat or load_catalogue()
    lines = ["| job | schedule (UTC) | cron | timeout | notebook | what it does |",
             "|---|---|---|---|---|---|"]
    for name, j in cat.jobs.items():
        lines.append(f"| `{name}` | {describe_schedule(j.schedule)} | `{j.schedule}` | "
                     f"{j.timeout_seconds} s | `{j.notebook}` | {j.description} |")
    return "\n".join(lines)


def table_text(cat: Catalogue | None = None) -> str:
    cat = cat or load_catalogue()
    width = max(len(n) for n in cat.jobs)
    return "\n".join(f"{n:<{width}}  {j.schedule:<14}  {describe_schedule(j.schedule):<32}  "
                     f"{j.notebook}" for n, j in cat.jobs.items())


def job_header(name: str, cat: Catalogue | None = None) -> None:
    """One line a job notebook prints about itself, generated from the catalogue."""
    j = (cat or load_catalogue()).job(name)
    line = (f"job {name}: {describe_schedule(j.schedule)} (cron `{j.schedule}`), "
            f"timeout {j.timeout_seconds} s, overlap {'allowed' if j.overlap else 'never'}")
    print(line)
