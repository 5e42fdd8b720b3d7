"""The Prefect backend plan-executor runs on: a Prefect server over an embedded PostgreSQL.

`settings` keeps Prefect offline and quiet, `postgres` owns the private cluster, `server` the
Prefect server lifecycle (start | stop | status), and `select` picks the backend for a run.
"""
