"""Push the dashboards to a running Grafana over its HTTP API (``salesguard grafana push``),
with ``grafana-client`` — the maintained fork of ``grafana-api`` (whose last release was in
2020), same API shape. The other way is file provisioning (``monitoring/grafana/provisioning``).

Into a ``salesguard`` folder (made when missing), every dashboard overwritten by uid; with a
Prometheus URL, the data source the panels refer to is made or updated too.
"""

from __future__ import annotations

from typing import Any

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from monitoring.dashboards import DASHBOARDS, DATASOURCE

FOLDER_UID = FOLDER_TITLE = "salesguard"


def _missing(exc: GrafanaClientError) -> bool:
    return exc.status_code == 404


def _ensure_folder(api: GrafanaApi) -> None:
    try:
        api.folder.get_folder(FOLDER_UID)
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)


def _ensure_datasource(api: GrafanaApi, prometheus_url: str) -> None:
    source: dict[str, Any] = {"name": "Prometheus (salesguard)", "type": "prometheus", "uid": DATASOURCE.uid,
                              "url": prometheus_url, "access": "proxy"}
    try:
        api.datasource.get_datasource_by_uid(DATASOURCE.uid)
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        api.datasource.create_datasource(source)
    else:
        api.datasource.update_datasource_by_uid(DATASOURCE.uid, source)


def push(url: str, token: str, prometheus_url: str | None = None) -> list[str]:
    """Push every dashboard; returns their uids. Raises ``grafana_client`` errors (401 for a
    bad token, 4xx/5xx otherwise)."""
    api = GrafanaApi.from_url(url, credential=token)
    if prometheus_url:
        _ensure_datasource(api, prometheus_url)
    _ensure_folder(api)
    pushed = []
    for build in DASHBOARDS.values():
        board = build()
        api.dashboard.update_dashboard({"dashboard": board, "folderUid": FOLDER_UID, "overwrite": True,
                                        "message": "salesguard grafana push"})
        pushed.append(board["uid"])
    return pushed
