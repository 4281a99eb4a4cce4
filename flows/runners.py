"""The task runner a configuration asks for: threads on a laptop, Dask when one machine is not enough."""
from __future__ import annotations


def task_runner_for(settings):
    if settings.prefect.task_runner == "dask":
        import logging

        from prefect_dask import DaskTaskRunner

        logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO chatter drowns the flow's logs

        if settings.prefect.dask_address:
            return DaskTaskRunner(address=settings.prefect.dask_address)
        # the dashboard on a free port: two flow runs of one machine (a worker's) each start a cluster
        return DaskTaskRunner(cluster_kwargs={"processes": True, "n_workers": 2, "threads_per_worker": 1,
                                              "dashboard_address": ":0"})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner()
