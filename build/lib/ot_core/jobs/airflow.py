"""The example Airflow DAG (``jobs/airflow_dag.py``) generated from the catalogue.

PapermillOperator runs the same notebooks with the same defaults; ``max_active_runs=1``
is Airflow's no-overlap and ``catchup=False`` its run-a-missed-slot-once. A test checks the
committed file equals this generator's output, so the two can never drift apart.
"""

from __future__ import annotations

from ot_core.jobs.catalogue import Catalogue, load_catalogue

DAG_FILE = "jobs/airflow_dag.py"

_HEAD = '''"""Airflow DAGs for the order-tracking jobs, GENERATED from jobs/jobs.yml.

Do not edit: regenerate with `ot jobs --airflow > jobs/airflow_dag.py`. Each job is one DAG
with one PapermillOperator; the executed notebook is kept under runs/ like `ot run` does.
Connections come from the workers' environment (OT_SOURCE_URL / OT_WAREHOUSE_URL), never
from parameters.
"""

from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.papermill.operators.papermill import PapermillOperator

JOBS = {
'''

_TAIL = '''}

for _name, _job in JOBS.items():
    with DAG(
        dag_id=f"ot_{_name}",
        schedule=_job["schedule"],
        start_date=datetime(2026, 1, 1),
        catchup=False,  # after downtime a missed slot runs once, not once per slot
        max_active_runs=1,  # two runs of a job never overlap
        tags=["order-tracking"],
    ) as _dag:
        PapermillOperator(
            task_id=_name,
            input_nb=_job["notebook"],
            output_nb="runs/" + _name + "/{{ ds_nodash }}/" + _name + "-{{ ts_nodash }}.ipynb",
            parameters=_job["parameters"],
            execution_timeout=timedelta(seconds=_job["timeout_seconds"]),
        )
    globals()[f"ot_{_name}"] = _dag
'''


def airflow_dag(cat: Catalogue | None = None) -> str:
    cat = cat or load_catalogue()
    body = []
    for name, j in cat.jobs.items():
        body.append(f"    {name!r}: {{\"notebook\": {j.notebook!r}, \"schedule\": {j.schedule!r}, "
                    f"\"timeout_seconds\": {j.timeout_seconds}, \"parameters\": {j.parameters!r}}},")
    return _HEAD + "\n".join(body) + "\n" + _TAIL
