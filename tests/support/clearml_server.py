"""A local stand-in ClearML server for tests: the real SDK (online mode) talks to it, and it records every request.

Usage::

    with StandInServer() as server:
        subprocess.run([sys.executable, "-c", script], env={**os.environ, **server.env()}, timeout=30)
        server.events(type="training_stats_scalar")   # what events.add_batch delivered, in order
        server.tasks[task_id]["status"]               # the in-memory task model

Two HTTP servers on 127.0.0.1 (OS-chosen ports) share one state: the API host (``/<service>.<action>``,
optionally ``/v2.23/<service>.<action>``) and the files host (multipart upload POSTs, GET downloads).
Requests to the files host are recorded under the endpoint names ``files.upload``, ``files.download`` and
``files.delete``, so failure injection addresses them like API endpoints.

Where the SDK's outcome depends on it, it refuses what clearml-server refuses: a status change outside the
server's state machine without ``force``, ``tasks.edit`` (and non-property hyperparameter edits) of a task
that is no draft, deleting a task that is no draft without ``force``, events for a published task, a batch
of which no event was added; and like it, a scalar or plot event replaces an earlier one with the same
task, iteration, metric and variant.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import email.parser
import email.policy
import hashlib
import hmac
import itertools
import json
import re
import socket
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ACCESS_KEY = "STANDINACCESSKEY0123456789"
SECRET_KEY = "stand-in-secret-key-0123456789abcdefghij"

SINGLE_VALUE_ITERATION = -(2**31)

_API_PATH = re.compile(r"^/(?:v(?P<version>\d+\.\d+)/)?(?P<endpoint>[A-Za-z_]+\.[A-Za-z_]+)/?$")
_STATUS_OF = {
    "tasks.started": "in_progress",
    "tasks.completed": "completed",
    "tasks.stopped": "stopped",
    "tasks.stop": "stopped",
    "tasks.failed": "failed",
    "tasks.close": "closed",
    "tasks.publish": "published",
    "tasks.reset": "created",
    "tasks.enqueue": "queued",
    "tasks.dequeue": "created",
}

#: clearml-server's task state machine (apiserver/bll/task/utils.py): the moves allowed without ``force``.
_STATE_MACHINE: dict[str, set[str]] = {
    "created": {"queued", "in_progress"},
    "queued": {"created", "in_progress"},
    "in_progress": {"stopped", "failed", "created", "completed"},
    "stopped": {"closed", "created", "failed", "in_progress", "published", "publishing", "completed"},
    "closed": {"created", "failed", "published", "publishing", "stopped"},
    "failed": {"created", "stopped", "published"},
    "publishing": {"published"},
    "published": set(),
    "completed": {"published", "in_progress", "created"},
}
#: Event types clearml-server stores under an id made of these fields: a second event with the same id
#: replaces the first (``EventBLL.add_events``); log events always get a new id.
_EVENT_ID_FIELDS = ("task", "iter", "metric", "variant", "key")


@dataclass
class Record:
    """One request as the server received it."""

    time: float  # time.monotonic() when the request line was read
    method: str
    path: str  # without the query string
    host: str  # "api" or "files"
    endpoint: str  # "tasks.create", ...; "files.upload" / "files.download" / "files.delete" on the files host
    body: Any  # parsed JSON (a list for json-lines bodies), or the raw bytes
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None  # HTTP status answered; None while pending or if never answered (hang)
    known: bool = True  # False: no handler, answered with the default (200, empty data)
    error: str | None = None  # traceback if the stand-in itself failed on this request (answered 500)


class _ApiError(Exception):
    def __init__(self, status: int, message: str, subcode: int = 0) -> None:
        super().__init__(message)
        self.status, self.message, self.subcode = status, message, subcode


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000+00:00"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # the real server keys last_metrics by md5 of names


class StandInServer:
    """In-memory stand-in for clearml-server (API and files host), recording every request.

    Constructor args (all also attributes, mutable while running, keyed by endpoint name):
      fail:  {endpoint: http_status}, answer that endpoint with that status (and an error envelope).
      delay: {endpoint: seconds}, sleep before answering (cut short when the server stops).
      hang:  endpoints never answered until the server stops (then the connection is dropped).
      garble: endpoints handled as usual (a task is created, a status changed) but answered 200 with a
             body cut short, not a JSON reply: what a proxy or a server dying mid-answer leaves.
      api_version / server_version: what the login token reports (the SDK picks its API level from it).

    Fail API endpoints with a status of 500 or below: clearml 2.1.12 (``InterfaceBase._send``) retries any
    result above 500 (502, 503, ...), a dropped connection or a timeout forever, whatever ``api.http.retries`` says.
    """

    def __init__(
        self,
        fail: dict[str, int] | None = None,
        delay: dict[str, float] | None = None,
        hang: Iterable[str] = (),
        garble: Iterable[str] = (),
        api_version: str = "2.23",
        server_version: str = "1.16.0",
    ) -> None:
        self.fail: dict[str, int] = dict(fail or {})
        self.delay: dict[str, float] = dict(delay or {})
        self.hang: set[str] = set(hang)
        self.garble: set[str] = set(garble)
        self.api_version = api_version
        self.server_version = server_version
        self.requests: list[Record] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, Any]] = {}  # registered with add_model; model events go to model_events
        self.model_events: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}  # files-host path ("/p/t.<id>/artifacts/...") -> content
        self._events: list[dict[str, Any]] = []
        self._event_ids: dict[tuple[Any, ...], int] = {}  # event id -> position in _events
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._ids = itertools.count(1)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.api_url = ""
        self.files_url = ""

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> StandInServer:
        self._tmp = tempfile.TemporaryDirectory(prefix="clearml-stand-in-")
        for host in ("api", "files"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self, host))
            server.daemon_threads = True
            server.block_on_close = False
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"stand-in-{host}", daemon=True
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        self.api_url = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.files_url = f"http://127.0.0.1:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        self._stopped.set()  # wakes delayed and hanging handlers
        for server in self._servers:
            server.shutdown()
        with self._lock:
            connections = dict(self._connections)
        for conn in connections:  # keep-alive connections would otherwise keep their handler threads waiting
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 5
        for thread in [*self._threads, *connections.values()]:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for server in self._servers:
            server.server_close()
        self._servers.clear()
        self._threads.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- for tests

    def env(self, extra_config: str = "") -> dict[str, str]:
        """Environment variables for a process (or this one) to use this server with the real SDK.

        CLEARML_CONFIG_FILE points at a file of this server's own (so no ~/clearml.conf is read) holding
        ``extra_config`` (HOCON, e.g. ``"api.http.retries.total: 0"``); by default it is empty.
        """
        assert self._tmp is not None, "start the server first"
        config = Path(self._tmp.name) / f"clearml-{next(self._ids)}.conf"
        config.write_text(extra_config + "\n")
        return {
            "CLEARML_API_HOST": self.api_url,
            "CLEARML_WEB_HOST": self.api_url,
            "CLEARML_FILES_HOST": self.files_url,
            "CLEARML_API_ACCESS_KEY": ACCESS_KEY,
            "CLEARML_API_SECRET_KEY": SECRET_KEY,
            "CLEARML_CONFIG_FILE": str(config),
            "CLEARML_OFFLINE_MODE": "0",
            "CLEARML_NO_DEFAULT_SERVER": "1",
            "CLEARML_SUPPRESS_UPDATE_MESSAGE": "1",
            "CLEARML_DISABLE_VAULT_SUPPORT": "1",
        }

    def events(self, task_id: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        """Events received through events.add_batch, in order, optionally of one task and/or one event type."""
        with self._lock:
            return [
                e
                for e in self._events
                if (task_id is None or e.get("task") == task_id) and (type is None or e.get("type") == type)
            ]

    def calls(self, endpoint: str | None = None) -> list[Record]:
        """Recorded requests, optionally only those to one endpoint."""
        with self._lock:
            return [r for r in self.requests if endpoint is None or r.endpoint == endpoint]

    def endpoints(self) -> list[str]:
        """Endpoint names in the order first called."""
        with self._lock:
            return list(dict.fromkeys(r.endpoint for r in self.requests))

    def unknown_endpoints(self) -> list[str]:
        """Endpoints called that the stand-in has no handler for (they were answered 200 with empty data)."""
        with self._lock:
            return list(dict.fromkeys(r.endpoint for r in self.requests if not r.known))

    def add_model(self, name: str, uri: str = "file:///models/weights.pt") -> str:
        """A published model in the registry (what ``OutputModel.update_weights`` and publishing would leave)."""
        model_id = self._new_id()
        now = _now_iso()
        with self._lock:
            self.models[model_id] = {
                "id": model_id, "name": name, "uri": uri, "ready": True, "framework": "PyTorch", "labels": {},
                "design": {}, "tags": [], "system_tags": [], "comment": "", "created": now, "last_update": now,
                "user": "stand-in-user", "company": "stand-in-company", "project": None, "task": None,
                "metadata": {}, "last_metrics": {},
            }  # fmt: skip
        return model_id

    def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> bool:
        """Poll ``predicate`` until it is true or ``timeout`` passes; returns whether it became true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return bool(predicate())

    # ---------------------------------------------------------------- request plumbing

    def _record(self, record: Record) -> None:
        with self._lock:
            self.requests.append(record)

    def _wait_injected(self, endpoint: str) -> bool:
        """Delay or hang as configured; False if the request must go unanswered (server stopping)."""
        delay = self.delay.get(endpoint)
        if delay:
            self._stopped.wait(delay)
        if endpoint in self.hang:
            self._stopped.wait()
        return not self._stopped.is_set()

    def _token(self) -> str:
        header = {"alg": "HS256", "typ": "JWT"}
        payload = {
            "env": "stand-in",
            "api_version": self.api_version,
            "server_version": self.server_version,
            "feature_set": "basic",
            "identity": {"user": "stand-in-user", "company": "stand-in-company", "role": "user"},
            "iat": int(time.time()),
            "exp": int(time.time()) + 30 * 24 * 3600,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
        signature = hmac.new(SECRET_KEY.encode(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64url(signature)}"

    def _envelope(
        self, endpoint: str, version: str | None, code: int, data: Any, msg: str = "OK", sub: int = 0
    ) -> bytes:
        rid = uuid.uuid4().hex
        meta = {
            "id": rid,
            "trx": rid,
            "endpoint": {
                "name": endpoint,
                "requested_version": version or self.api_version,
                "actual_version": version or self.api_version,
            },
            "result_code": code,
            "result_subcode": sub,
            "result_msg": msg,
            "error_stack": "",
            "error_data": {},
            "api_version": self.api_version,
        }
        return json.dumps({"meta": meta, "data": data}).encode()

    def _handle_api(self, endpoint: str, body: Any) -> tuple[Any, bool]:
        handler = getattr(self, "_api_" + endpoint.replace(".", "__"), None)
        if handler is None and endpoint in _STATUS_OF:
            return self._set_status(body, _STATUS_OF[endpoint]), True
        if handler is None:
            return {}, False
        with self._lock:
            return handler(body if isinstance(body, (dict, list)) else {}), True

    # ---------------------------------------------------------------- model helpers

    def _new_id(self) -> str:
        return uuid.uuid4().hex

    def _task(self, task_id: Any) -> dict[str, Any]:
        task = self.tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None:
            raise _ApiError(400, f"Invalid task id: id={task_id}", 101)
        return task

    def _set_status(self, body: Any, status: str) -> dict[str, Any]:
        body = body if isinstance(body, dict) else {}
        with self._lock:
            task = self._task(body.get("task"))
            current = task.get("status", "created")
            # clearml-server's ChangeStatusRequest: only the state machine's moves, unless forced
            if not body.get("force") and status != current and status not in _STATE_MACHINE.get(current, set()):
                raise _ApiError(400, f"Invalid status change: {current} -> {status}", 110)
            now = _now_iso()
            # The real server replaces both texts on every change ("" when not given).
            fields = {
                "status": status,
                "status_changed": now,
                "last_update": now,
                "status_reason": body.get("status_reason") or "",
                "status_message": body.get("status_message") or "",
            }
            if status == "in_progress":
                fields["started"] = now
            if status in ("completed", "stopped", "failed", "closed", "published"):
                fields["completed"] = now
            task.update(fields)
            task.setdefault("status_history", []).append(status)
            return {"updated": 1, "fields": fields}

    @staticmethod
    def _matches(pattern: Any, value: Any) -> bool:
        if pattern is None:
            return True
        if isinstance(pattern, list):
            return value in pattern
        try:
            return re.search(str(pattern), str(value or "")) is not None
        except re.error:
            return pattern == value

    @staticmethod
    def _tagged(wanted: Any, tags: Any) -> bool:
        """clearml-server's tag filter: any of the tags given; ``-tag`` excludes; ``__$all`` / ``__$any``
        switch how the following (included) tags combine."""
        if not wanted:
            return True
        have = set(tags or [])
        include: list[tuple[str, str]] = []
        mode = "any"
        for tag in wanted if isinstance(wanted, list) else [wanted]:
            tag = str(tag)
            if tag in ("__$all", "__$and"):
                mode = "all"
            elif tag in ("__$any", "__$or"):
                mode = "any"
            elif tag.startswith("-"):
                if tag[1:] in have:
                    return False
            else:
                include.append((mode, tag))
        anys = [tag for how, tag in include if how == "any"]
        alls = [tag for how, tag in include if how == "all"]
        return all(tag in have for tag in alls) and (not anys or any(tag in have for tag in anys))

    @staticmethod
    def _only_fields(item: dict[str, Any], only: Any) -> dict[str, Any]:
        if not only:
            return copy.deepcopy(item)
        out: dict[str, Any] = {"id": item.get("id")}
        for name in only:
            parts = str(name).split(".")
            src: Any = item
            for part in parts:
                src = src.get(part) if isinstance(src, dict) else None
            if src is None:
                continue
            dst = out
            for part in parts[:-1]:
                dst = dst.setdefault(part, {})
            dst[parts[-1]] = copy.deepcopy(src)
        return out

    # ---------------------------------------------------------------- endpoints: auth, server, users

    def _api_auth__login(self, body: Any) -> Any:
        return {"token": self._token()}

    def _api_debug__ping(self, body: Any) -> Any:
        return {"msg": "ClearML stand-in server"}

    def _api_server__info(self, body: Any) -> Any:
        return {"version": self.server_version, "build": "stand-in", "commit": "", "api_version": self.api_version}

    def _api_users__get_current_user(self, body: Any) -> Any:
        user = {"id": "stand-in-user", "name": "Stand-in User", "company": {"id": "stand-in-company", "name": "c"}}
        return {"user": user, "getting_started": {}, "settings": {}}

    # ---------------------------------------------------------------- endpoints: projects

    def _api_projects__create(self, body: Any) -> Any:
        pid = self._new_id()
        now = _now_iso()
        self.projects[pid] = {
            "id": pid,
            "name": body.get("name", ""),
            "description": body.get("description", ""),
            "system_tags": body.get("system_tags", []),
            "tags": body.get("tags", []),
            "default_output_destination": body.get("default_output_destination"),
            "created": now,
            "last_update": now,
        }
        return {"id": pid}

    def _api_projects__get_all(self, body: Any) -> Any:
        ids = body.get("id")
        ids = [ids] if isinstance(ids, str) else ids
        found = [
            self._only_fields(p, body.get("only_fields"))
            for p in self.projects.values()
            if (not ids or p["id"] in ids) and self._matches(body.get("name"), p["name"])
        ]
        return {"projects": found}

    _api_projects__get_all_ex = _api_projects__get_all

    def _api_projects__get_by_id(self, body: Any) -> Any:
        project = self.projects.get(body.get("project"))
        if project is None:
            raise _ApiError(400, f"Invalid project id: id={body.get('project')}", 101)
        return {"project": copy.deepcopy(project)}

    # ---------------------------------------------------------------- endpoints: tasks

    def _api_tasks__create(self, body: Any) -> Any:
        tid = self._new_id()
        now = _now_iso()
        task: dict[str, Any] = {
            "id": tid,
            "user": "stand-in-user",
            "company": "stand-in-company",
            "status": "created",
            "status_history": ["created"],
            "created": now,
            "last_update": now,
            "last_change": now,
            "status_changed": now,
            "tags": [],
            "system_tags": [],
            "comment": "",
            "hyperparams": {},
            "configuration": {},
            "execution": {"artifacts": []},
            "output": {},
            "script": {},
            "models": {"input": [], "output": []},
            "runtime": {},
            "last_iteration": 0,
            "last_metrics": {},
        }
        task.update({k: copy.deepcopy(v) for k, v in body.items() if k != "method"})
        task.setdefault("execution", {}).setdefault("artifacts", [])
        self.tasks[tid] = task
        return {"id": tid}

    def _api_tasks__get_by_id(self, body: Any) -> Any:
        return {"task": copy.deepcopy(self._task(body.get("task")))}

    def _api_tasks__get_all(self, body: Any) -> Any:
        ids = body.get("id")
        ids = [ids] if isinstance(ids, str) else ids
        projects = body.get("project")
        projects = [projects] if isinstance(projects, str) else projects
        statuses = body.get("status")
        statuses = [statuses] if isinstance(statuses, str) else statuses
        found = [
            self._only_fields(t, body.get("only_fields"))
            for t in self.tasks.values()
            if (not ids or t["id"] in ids)
            and (not projects or t.get("project") in projects)
            and (not statuses or t.get("status") in statuses)
            and self._matches(body.get("name"), t.get("name"))
            and self._tagged(body.get("tags"), t.get("tags"))
            and self._tagged(body.get("system_tags"), t.get("system_tags"))
        ]
        order = body.get("order_by") or []
        for key in reversed(order if isinstance(order, list) else [order]):
            name = str(key).lstrip("-")
            found.sort(key=lambda t: str(t.get(name) or ""), reverse=str(key).startswith("-"))
        return {"tasks": found}

    _api_tasks__get_all_ex = _api_tasks__get_all

    def _api_tasks__edit(self, body: Any) -> Any:
        task = self._task(body.get("task"))
        if not body.get("force") and task.get("status") != "created":  # clearml-server's tasks.edit
            raise _ApiError(400, f"Invalid task status: expected=created, status={task.get('status')}", 110)
        fields = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("task", "force", "method")}
        task.update(fields)
        task.setdefault("execution", {}).setdefault("artifacts", [])
        task["last_update"] = task["last_change"] = _now_iso()
        return {"updated": 1, "fields": fields}

    _api_tasks__update = _api_tasks__edit

    def _api_tasks__ping(self, body: Any) -> Any:
        self._task(body.get("task"))["last_update"] = _now_iso()
        return {}

    def _api_tasks__edit_hyper_params(self, body: Any) -> Any:
        task = self._task(body.get("task"))
        items = body.get("hyperparams") or []
        self._check_updatable(task, body, properties_only=all(p.get("section") == "properties" for p in items))
        params = task.setdefault("hyperparams", {})
        replace = body.get("replace_hyperparams", "none")
        if replace == "all":
            params.clear()
        elif replace == "section":
            for section in {p.get("section", "") for p in items}:
                params.pop(section, None)
        for item in items:
            section = item.get("section", "")
            params.setdefault(section, {})[item.get("name", "")] = copy.deepcopy(item)
        return {"updated": 1}

    def _api_tasks__delete_hyper_params(self, body: Any) -> Any:
        task = self._task(body.get("task"))
        items = body.get("hyperparams") or []
        self._check_updatable(task, body, properties_only=all(p.get("section") == "properties" for p in items))
        params = task.setdefault("hyperparams", {})
        for item in body.get("hyperparams") or []:
            section = item.get("section", "")
            if item.get("name") is None:
                params.pop(section, None)
            else:
                params.get(section, {}).pop(item["name"], None)
        return {"deleted": 1}

    @staticmethod
    def _check_updatable(task: dict[str, Any], body: Any, properties_only: bool = False) -> None:
        """clearml-server's ``get_task_for_update``: a draft, or a running task with ``force``; properties always."""
        allowed = ("created", "in_progress") if body.get("force") else ("created",)
        if not properties_only and task.get("status") not in allowed:
            raise _ApiError(400, f"Invalid task status: expected=created, status={task.get('status')}", 110)

    def _api_tasks__delete(self, body: Any) -> Any:
        task = self._task(body.get("task"))
        archived = "archived" in (task.get("system_tags") or [])
        if task.get("status") != "created" and not archived and not body.get("force"):  # TaskCannotBeDeleted
            raise _ApiError(
                400, f"Task cannot be deleted: due to status, use force=True (status={task['status']})", 130
            )
        del self.tasks[task["id"]]
        self._events[:] = [e for e in self._events if e.get("task") != task["id"]]
        self._event_ids = {
            tuple(e.get(f) for f in _EVENT_ID_FIELDS): i for i, e in enumerate(self._events) if e.get("type") != "log"
        }
        return {"deleted": True}

    def _api_tasks__get_hyper_params(self, body: Any) -> Any:
        tasks = body.get("tasks") or []
        return {
            "params": [
                {
                    "task": tid,
                    "hyperparams": [
                        copy.deepcopy(p)
                        for section in self._task(tid).get("hyperparams", {}).values()
                        for p in section.values()
                    ],
                }
                for tid in tasks
            ]
        }

    def _api_tasks__edit_configuration(self, body: Any) -> Any:
        configuration = self._task(body.get("task")).setdefault("configuration", {})
        if body.get("replace_configuration"):
            configuration.clear()
        for item in body.get("configuration") or []:
            configuration[item.get("name", "")] = copy.deepcopy(item)
        return {"updated": 1}

    def _api_tasks__get_configurations(self, body: Any) -> Any:
        names = body.get("names")
        return {
            "configurations": [
                {
                    "task": tid,
                    "configuration": [
                        copy.deepcopy(c)
                        for name, c in self._task(tid).get("configuration", {}).items()
                        if not names or name in names
                    ],
                }
                for tid in body.get("tasks") or []
            ]
        }

    def _api_tasks__get_configuration_names(self, body: Any) -> Any:
        return {
            "configurations": [
                {"task": tid, "names": list(self._task(tid).get("configuration", {}))}
                for tid in body.get("tasks") or []
            ]
        }

    def _api_tasks__add_or_update_artifacts(self, body: Any) -> Any:
        artifacts = self._task(body.get("task")).setdefault("execution", {}).setdefault("artifacts", [])
        new = body.get("artifacts") or []
        for art in new:
            key = (art.get("key"), art.get("mode", "output"))
            artifacts[:] = [a for a in artifacts if (a.get("key"), a.get("mode", "output")) != key]
            artifacts.append(copy.deepcopy(art))
        return {"updated": len(new)}

    def _api_tasks__delete_artifacts(self, body: Any) -> Any:
        artifacts = self._task(body.get("task")).setdefault("execution", {}).setdefault("artifacts", [])
        keys = {(a.get("key"), a.get("mode", "output")) for a in body.get("artifacts") or []}
        before = len(artifacts)
        artifacts[:] = [a for a in artifacts if (a.get("key"), a.get("mode", "output")) not in keys]
        return {"deleted": before - len(artifacts)}

    def _api_tasks__set_requirements(self, body: Any) -> Any:
        script = self._task(body.get("task")).setdefault("script", {})
        script["requirements"] = copy.deepcopy(body.get("requirements"))
        return {"updated": 1, "fields": {}}

    def _api_tasks__add_or_update_model(self, body: Any) -> Any:
        models = self._task(body.get("task")).setdefault("models", {}).setdefault(body.get("type", "output"), [])
        models[:] = [m for m in models if m.get("name") != body.get("name")]
        models.append({"name": body.get("name"), "model": body.get("model")})
        return {"updated": 1}

    # ---------------------------------------------------------------- endpoints: models

    def _model(self, model_id: Any) -> dict[str, Any]:
        model = self.models.get(model_id) if isinstance(model_id, str) else None
        if model is None:
            raise _ApiError(400, f"Invalid model id: id={model_id}", 401)
        return model

    def _api_models__get_by_id(self, body: Any) -> Any:
        return {"model": copy.deepcopy(self._model(body.get("model")))}

    def _api_models__get_all(self, body: Any) -> Any:
        ids = body.get("id")
        ids = [ids] if isinstance(ids, str) else ids
        found = [
            self._only_fields(m, body.get("only_fields"))
            for m in self.models.values()
            if (not ids or m["id"] in ids) and self._matches(body.get("name"), m.get("name"))
        ]
        return {"models": found}

    _api_models__get_all_ex = _api_models__get_all

    # ---------------------------------------------------------------- endpoints: events

    def _api_events__add_batch(self, body: Any) -> Any:
        events = body if isinstance(body, list) else [body]
        errors: dict[str, int] = {}
        added = 0
        for event in events:
            if isinstance(event, dict) and event.get("model_event"):  # a model's own metrics (Model.report_*)
                if event.get("task") not in self.models:
                    errors["Invalid model id"] = errors.get("Invalid model id", 0) + 1
                    continue
                self.model_events.append(event)
                added += 1
                continue
            task = self.tasks.get(event.get("task")) if isinstance(event, dict) else None
            if task is None or task.get("status") in ("publishing", "published"):  # locked tasks take no events
                errors["Invalid task id"] = errors.get("Invalid task id", 0) + 1
                continue
            event.setdefault("timestamp", int(time.time() * 1000))  # as the real server does when none is sent
            # Same id (task, iter, metric, variant): the earlier event is replaced, as in clearml-server.
            key = tuple(event.get(f) for f in _EVENT_ID_FIELDS) if event.get("type") != "log" else None
            position = self._event_ids.get(key) if key is not None else None
            if position is not None:
                self._events[position] = event
            else:
                if key is not None:
                    self._event_ids[key] = len(self._events)
                self._events.append(event)
            added += 1
            if event.get("type") == "training_stats_scalar":
                self._update_last_metrics(task, event)
        if not added:  # clearml-server: errors.bad_request.EventsNotAdded
            raise _ApiError(400, f"Events not added: {errors}", 128)
        return {"added": added, "errors": sum(errors.values()), "errors_info": errors}

    _api_events__add = _api_events__add_batch

    @staticmethod
    def _update_last_metrics(task: dict[str, Any], event: dict[str, Any]) -> None:
        metric, variant, value = event.get("metric", ""), event.get("variant", ""), event.get("value")
        iteration = event.get("iter", 0)
        if iteration is not None and iteration != SINGLE_VALUE_ITERATION:
            task["last_iteration"] = max(task.get("last_iteration") or 0, iteration)
        entry = task.setdefault("last_metrics", {}).setdefault(_md5(metric), {}).setdefault(_md5(variant), {})
        old_min, old_max = entry.get("min_value", value), entry.get("max_value", value)
        entry.update(
            metric=metric,
            variant=variant,
            value=value,
            min_value=min(old_min, value) if value is not None else old_min,
            max_value=max(old_max, value) if value is not None else old_max,
            iter=iteration,
        )

    def _task_events(self, body: Any, type_: str) -> list[dict[str, Any]]:
        task_id = body.get("task")
        if task_id is None and body.get("tasks"):
            task_id = body["tasks"][0]
        self._task(task_id)
        return [e for e in self._events if e.get("task") == task_id and e.get("type") == type_]

    def _api_events__get_scalar_metrics_and_variants(self, body: Any) -> Any:
        metrics: dict[str, dict[str, Any]] = {}
        for e in self._task_events(body, "training_stats_scalar"):
            metrics.setdefault(e.get("metric", ""), {})[e.get("variant", "")] = {"name": e.get("variant", "")}
        return {"metrics": metrics}

    def _api_events__scalar_metrics_iter_histogram(self, body: Any) -> Any:
        out: dict[str, dict[str, Any]] = {}
        for e in self._task_events(body, "training_stats_scalar"):
            if e.get("iter") == SINGLE_VALUE_ITERATION:
                continue
            series = out.setdefault(e.get("metric", ""), {}).setdefault(
                e.get("variant", ""), {"name": e.get("variant", ""), "x": [], "y": []}
            )
            series["x"].append(e.get("iter"))
            series["y"].append(e.get("value"))
        return out

    def _api_events__get_task_single_value_metrics(self, body: Any) -> Any:
        tasks = body.get("tasks") or [body.get("task")]
        result = []
        for tid in tasks:
            values = [
                {
                    "metric": e.get("metric"),
                    "variant": e.get("variant"),
                    "value": e.get("value"),
                    "timestamp": e.get("timestamp"),
                }
                for e in self._task_events({"task": tid}, "training_stats_scalar")
                if e.get("iter") == SINGLE_VALUE_ITERATION
            ]
            result.append({"task": tid, "task_name": self._task(tid).get("name"), "values": values})
        return {"tasks": result}

    def _api_events__get_task_plots(self, body: Any) -> Any:
        plots = self._task_events(body, "plot")
        return {"plots": copy.deepcopy(plots), "returned": len(plots), "total": len(plots), "scroll_id": ""}

    _api_events__get_multi_task_plots = _api_events__get_task_plots

    def _api_events__get_task_log(self, body: Any) -> Any:
        logs = self._task_events(body, "log")
        return {"events": copy.deepcopy(logs), "returned": len(logs), "total": len(logs), "scroll_id": ""}

    def _api_events__get_task_events(self, body: Any) -> Any:
        """clearml-server 1.16's TaskEventsRequest: event_type, metrics [{metric, variants}], batch_size (default
        500), count_total (default true), scroll_id; pages of ``batch_size`` in iteration order."""
        self._task(body.get("task"))
        events = [e for e in self._events if e.get("task") == body.get("task")]
        wanted = body.get("event_type")
        if wanted and wanted != "all":
            events = [e for e in events if e.get("type") == wanted]
        metrics = {m.get("metric"): set(m.get("variants") or ()) for m in body.get("metrics") or []}
        if metrics:
            events = [
                e
                for e in events
                if e.get("metric") in metrics and (not metrics[e["metric"]] or e.get("variant") in metrics[e["metric"]])
            ]
        events.sort(key=lambda e: e.get("iter") or 0)
        start = int(body.get("scroll_id") or 0)
        page = events[start : start + int(body.get("batch_size") or 500)]
        total = len(events) if body.get("count_total", True) else None
        return {
            "events": copy.deepcopy(page),
            "returned": len(page),
            "total": total,
            "scroll_id": str(start + len(page)),
        }

    # ---------------------------------------------------------------- files host

    def _store_upload(self, path: str, content_type: str, body: bytes) -> list[str]:
        """Store the parts of a multipart upload (field name = object path below ``path``); returns stored paths."""
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        stored = []
        base = path.rstrip("/")
        for part in message.iter_parts() if message.is_multipart() else []:
            name = part.get_param("name", header="content-disposition") or part.get_filename() or "upload"
            full = f"{base}/{str(name).lstrip('/')}"
            payload = part.get_payload(decode=True) or b""
            with self._lock:
                self.files[full] = payload
            stored.append(full)
        if not stored:
            with self._lock:
                self.files[path] = body
            stored.append(path)
        return stored


def _handler_class(server: StandInServer, host: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else each answer waits ~40 ms for the client's delayed ACK

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

        def setup(self) -> None:
            super().setup()
            with server._lock:
                server._connections[self.connection] = threading.current_thread()
            threading.current_thread().name = f"stand-in-{host}-connection"

        def finish(self) -> None:
            with server._lock:
                server._connections.pop(self.connection, None)
            with contextlib.suppress(OSError):
                super().finish()

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def _read_body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                return self.rfile.read(length)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            return b""

        def _serve(self) -> None:
            received = time.monotonic()
            url = urlsplit(self.path)
            raw = self._read_body()
            content_type = self.headers.get("Content-Type", "")
            match = _API_PATH.match(url.path) if host == "api" else None
            if match:
                endpoint, version = match["endpoint"], match["version"]
            else:
                endpoint = {"POST": "files.upload", "PUT": "files.upload", "DELETE": "files.delete"}.get(
                    self.command, "files.download"
                )
                version = None
            body: Any = raw
            if raw and not content_type.startswith("multipart/"):
                try:
                    text = raw.decode()
                    if "json-lines" in content_type:
                        body = [json.loads(line) for line in text.splitlines() if line.strip()]
                    else:
                        body = json.loads(text)
                except ValueError:
                    body = raw
            elif not raw and match:
                body = {}
            record = Record(
                time=received,
                method=self.command,
                path=url.path,
                host=host,
                endpoint=endpoint,
                body=body,
                query=parse_qs(url.query),
                headers=dict(self.headers.items()),
            )
            server._record(record)
            if not server._wait_injected(endpoint):
                self.close_connection = True
                return
            status = server.fail.get(endpoint)
            if match:
                self._answer_api(record, endpoint, version, body, status)
            else:
                # The fileserver serves the decoded path (a project name with a space is "%20" in the URL)
                self._answer_files(record, unquote(url.path), content_type, raw, status)

        def _answer_api(
            self, record: Record, endpoint: str, version: str | None, body: Any, status: int | None
        ) -> None:
            if status is not None:
                payload = server._envelope(endpoint, version, status, {}, f"stand-in failure {status}", 0)
            else:
                try:
                    data, record.known = server._handle_api(endpoint, body)
                    status, payload = 200, server._envelope(endpoint, version, 200, data)
                    if endpoint in server.garble:  # done, but the answer is cut short
                        payload = payload[: len(payload) // 2]
                except _ApiError as err:
                    status = err.status
                    payload = server._envelope(endpoint, version, err.status, {}, err.message, err.subcode)
                except Exception as err:  # noqa: BLE001 - a stand-in bug must answer, not drop the connection
                    # 500, not 5xx above it: the SDK retries any result_code > 500 forever
                    record.error = traceback.format_exc()
                    status, payload = 500, server._envelope(endpoint, version, 500, {}, f"stand-in error: {err!r}")
            self._send(record, status, payload, "application/json")

        def _answer_files(self, record: Record, path: str, content_type: str, raw: bytes, status: int | None) -> None:
            if status is not None:
                self._send(record, status, b"stand-in failure", "text/plain")
                return
            if record.endpoint == "files.upload":
                stored = server._store_upload(path, content_type, raw)
                self._send(record, 200, json.dumps({"uploaded": stored}).encode(), "application/json")
            elif record.endpoint == "files.delete":
                with server._lock:
                    found = server.files.pop(path, None) is not None
                self._send(record, 200 if found else 404, b"", "text/plain")
            else:
                with server._lock:
                    content = server.files.get(path)
                if content is None:
                    self._send(record, 404, b"not found", "text/plain")
                else:
                    self._send(record, 200, content, "application/octet-stream")

        def _send(self, record: Record, status: int, payload: bytes, content_type: str) -> None:
            record.status = status
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self._headers_buffer.append(b"\r\n")  # headers and body in one write
                self._headers_buffer.append(payload)
                self.flush_headers()
            except OSError:
                self.close_connection = True

    return Handler


if __name__ == "__main__":  # manual use: print the environment, serve until interrupted
    with StandInServer() as _server:
        print(json.dumps(_server.env(), indent=2), flush=True)
        threading.Event().wait()
