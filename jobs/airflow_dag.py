"""Airflow DAGs for the order-tracking jobs, GENERATED from jobs/jobs.yml.

Do not edit: regenerate with `ot jobs --airflow > jobs/airflow_dag.py`. Each job is one DAG
with one PapermillOperator; the executed notebook is kept under runs/ like `ot run` does.
Connections come from the workers' environment (OT_SOURCE_URL / OT_WAREHOUSE_URL), never
from parameters.
"""

from datetime import datetime, timedelta

from airflow import DAG
from airflow.providers.papermill.operators.papermill import PapermillOperator

JOBS = {
    'cycle': {"notebook": 'cycle.ipynb', "schedule": '*/15 * * * *', "timeout_seconds": 840, "parameters": {}},
    'rotate_periods': {"notebook": 'rotate_periods.ipynb', "schedule": '0 1 1 * *', "timeout_seconds": 1800, "parameters": {}},
    'daily_monitoring': {"notebook": 'daily_monitoring.ipynb', "schedule": '0 3 * * *', "timeout_seconds": 1800, "parameters": {}},
    'maintenance': {"notebook": 'maintenance.ipynb', "schedule": '30 4 * * *', "timeout_seconds": 3600, "parameters": {}},
    'monthly_compare': {"notebook": 'monthly_compare.ipynb', "schedule": '0 5 2 * *', "timeout_seconds": 3600, "parameters": {}},
}

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
