"""The configured ClearML server's REST API, for the calls whose errors ClearML's SDK would only log.

Every call here waits at most ``SERVER_TIMEOUT_S`` (connect, and again for
the answer) and is never retried: ClearML's own session retries a timed-out
request for hours, and the calls that mark a stalled upload failed must not
stall with it.
"""

from __future__ import annotations

from typing import Any

from ..store.runs import SERVER_TIMEOUT_S

#: The system tag ``tracked upload`` gives the task it creates for a session (``<prefix><session id>``):
#: how a task whose ``tasks.create`` answer never arrived is found again.
SESSION_TAG = "tracked-session:"


class UploadError(Exception):
    """One session's upload went wrong; the message says what, in one line."""


class Server:
    """The configured server's REST API, for the calls whose errors ClearML's SDK would only log."""

    def __init__(self) -> None:
        from clearml.backend_api import Session as ApiSession
        from clearml.backend_api.utils import get_http_session_with_retry

        self.session = ApiSession()
        self.host = str(self.session.host)
        # No retries (ClearML's own session retries a timeout for hours); its certificate settings all the same.
        self.http = get_http_session_with_retry(total=0, config=self.session.config)

    def call(self, endpoint: str, **body: Any) -> dict[str, Any]:
        """POST ``endpoint``; its ``data``. UploadError for an error status or no answer within the timeout."""
        import requests

        try:
            response = self.http.post(
                f"{self.host.rstrip('/')}/{endpoint}",
                json=body,
                headers=self.session.add_auth_headers({}),
                timeout=(SERVER_TIMEOUT_S, SERVER_TIMEOUT_S),
            )
        except requests.RequestException as exc:
            raise UploadError(
                f"the server did not answer {endpoint} within {SERVER_TIMEOUT_S:g} s ({type(exc).__name__})"
            ) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            if response.status_code == 200:
                raise UploadError(f"the server's answer to {endpoint} is not a ClearML reply")
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

    def tagged(self, session_id: str) -> list[dict[str, Any]]:
        """The tasks ``tracked upload`` created for this session (by their system tag), oldest first."""
        found = self.call(
            "tasks.get_all",
            system_tags=[f"{SESSION_TAG}{session_id}"],
            only_fields=["id", "status", "status_message", "name", "created"],
            order_by=["created"],
        ).get("tasks")
        return [t for t in found or [] if isinstance(t, dict) and t.get("id")]

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
