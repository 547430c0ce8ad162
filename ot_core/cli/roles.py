"""Who may do what: the roles of a server warehouse, and the views served behind a login."""

from __future__ import annotations

import click

from ot_core.cli.base import config_option, handle_errors, main

KINDS = ("pipeline", "analyst", "auditor")


@main.command()
@click.option("--sql", "as_sql", is_flag=True, required=True,
              help="Print the CREATE ROLE / GRANT statements (the only output so far).")
@click.option("--role", "only", multiple=True, type=click.Choice(KINDS),
              help="Only this role (repeatable; default: all three). The analyst and "
                   "auditor grants name tables the pipeline creates: run them after its "
                   "first cycle.")
@click.option("--backend", type=click.Choice(["postgresql", "redshift"]), default=None,
              help="Write the SQL for this engine (default: the engine of OT_WAREHOUSE_URL).")
@click.option("--database", default=None,
              help="The database the roles connect to (default: OT_WAREHOUSE_URL's).")
@click.option("--pipeline-role", default="ot_pipeline", show_default=True,
              help="Name of the pipeline's login.")
@click.option("--analyst-role", default="ot_analyst", show_default=True,
              help="Name of the analysts' role.")
@click.option("--auditor-role", default="ot_auditor", show_default=True,
              help="Name of the auditors' role.")
@config_option
@handle_errors
def roles(as_sql, only, backend, database, pipeline_role, analyst_role, auditor_role,
          config) -> None:
    """Print the SQL creating the three roles of a PostgreSQL or Redshift warehouse for the
    configured schemas: the pipeline (DDL + DML on its schemas), the analyst (reads marts,
    history and the views' control tables; resolves exceptions only through the pipeline's
    procedure) and the auditor (reads the run records). Nothing is run: review it, then
    run it as an administrator (docs/roles.md)."""
    from ot_core.db.roles import role_script

    script = role_script(config, backend=backend, database=database,
                         names={"pipeline": pipeline_role, "analyst": analyst_role,
                                "auditor": auditor_role}, only=tuple(only) or KINDS)
    click.echo(script.sql(), nl=False)


@main.command()
@click.argument("notebook")
@click.option("--port", type=int, default=8866, show_default=True, help="Port to listen on.")
@click.option("--ip", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but localhost is reachable from the "
                   "network: put the team's login in front (docs/roles.md#serving-the-views).")
@handle_errors
def serve(notebook, port, ip) -> None:
    """Serve one analyst view (a shipped view's name, e.g. partner_dashboard, or an .ipynb
    file) as a web page with Voilà, until interrupted. Authentication is always on: the
    token comes from OT_VIEW_TOKEN or the file OT_VIEW_TOKEN_FILE names (at least 16
    characters; without one it refuses to start, exit 2). Visitors open
    http://127.0.0.1:PORT/?token=TOKEN; without it they are refused. The page reads with
    OT_ANALYST_URL and runs no code a visitor types."""
    from ot_core.workbench.serve import serve as serve_view

    serve_view(notebook, port=port, ip=ip)
