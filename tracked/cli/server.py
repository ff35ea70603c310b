"""The configured ClearML server's REST API, for the calls whose errors ClearML's SDK would only log."""

from __future__ import annotations

from typing import Any


class UploadError(Exception):
    """One session's upload went wrong; the message says what, in one line."""


class Server:
    """The configured server's REST API, for the calls whose errors ClearML's SDK would only log."""

    def __init__(self) -> None:
        from clearml.backend_api import Session as ApiSession

        self.session = ApiSession()
        self.host = str(self.session.host)

    def call(self, endpoint: str, **body: Any) -> dict[str, Any]:
        service, action = endpoint.split(".", 1)
        response = self.session.send_request(service, action, method="post", json=body)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code != 200:
            message = (answer.get("meta") or {}).get("result_msg") or response.reason
            raise UploadError(f"the server answered {endpoint} with HTTP {response.status_code} ({message})")
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    def task(self, task_id: str) -> dict[str, Any] | None:
        """The task's status, project, artifacts and hyperparameters; None when there is no such task."""
        fields = ["id", "status", "status_reason", "project", "execution.artifacts", "hyperparams"]
        found = self.call("tasks.get_all", id=[task_id], only_fields=fields).get("tasks") or []
        return found[0] if found and isinstance(found[0], dict) else None

    def url(self, task: dict[str, Any]) -> str:
        """The task's page in the web UI (from the configured web host)."""
        from clearml import Task

        try:
            return str(Task.get_task_output_log_web_page(str(task["id"]), project_id=task.get("project")))
        except Exception:  # noqa: BLE001 - the link is a convenience
            return ""

    def link(self, task_id: str) -> str:
        """``url`` of a task known by its id only; "" when the server cannot tell (it never hides the outcome)."""
        try:
            task = self.task(task_id)
        except UploadError:
            return ""
        return "" if task is None else self.url(task)
