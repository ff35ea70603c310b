"""Secrets stay out of everything a run writes: arguments, metric and detail names, messages, clearml.conf's keys."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tracked import TrackedWarning, read_session, tracked_eval

ACCESS = "AKTESTACCESSKEY0123456789"


SECRET = "sk-test-SECRET-VALUE-9876543210"


TOKEN_ARG = "hf_argtoken_ABCDEF123456"


def all_text(root: Path) -> str:
    """Every file under root, as text (zips unpacked), so a search covers all the run wrote."""
    import zipfile

    chunks = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                chunks += [archive.read(name).decode("utf-8", "replace") for name in archive.namelist()]
        else:
            chunks.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


def test_simple_arguments_become_hyperparameters_with_secrets_redacted() -> None:
    """Numbers, strings, booleans and paths are hyperparameters; secret-looking names are redacted."""

    @tracked_eval(verbose=False)
    def evaluate(
        model: object, dataset: list[int], threshold: float, split: str, out: Path, hf_token: str, apiKey: str
    ) -> Iterator[float]:
        yield 1.0

    result = evaluate(object(), [1], 0.5, "test", Path("/tmp/x"), TOKEN_ARG, "k-123456789")
    params = read_session(result.session_dir).hyperparameters["Args"]
    assert params["threshold"] == "0.5"
    assert params["split"] == "test"
    assert params["out"] == "/tmp/x"
    assert params["hf_token"] == "<redacted>"
    assert params["apiKey"] == "<redacted>"
    assert "model" not in params
    assert "dataset" not in params


@pytest.mark.parametrize(
    "name",
    ["secrets", "tokens", "passwords", "hftoken", "openaikey", "creds", "pw", "dsn", "database_url", "webhook",
     "authorization", "session_id", "hfToken", "DB_PASSWORD", "clientSecret"],
)  # fmt: skip
def test_secret_looking_argument_names_are_redacted(name: str) -> None:
    """Names are matched by their parts (case, separators, plurals ignored): their values are never written."""
    from tracked.common.call import simple_params

    assert simple_params({name: "hunter2-very-secret"}, skip=set()) == {name: "<redacted>"}


def test_ordinary_names_are_kept_and_url_passwords_are_redacted() -> None:
    """max_tokens, monkey, sessions_dir stay readable; a password inside a URL argument is redacted."""
    from tracked.common.call import simple_params

    kept = simple_params({"max_tokens": 256, "monkey": "george", "sessions_dir": "/data"}, skip=set())
    assert kept == {"max_tokens": "256", "monkey": "george", "sessions_dir": "/data"}
    url = simple_params({"endpoint": "https://user:PASS1234@host/db"}, skip=set())
    assert url == {"endpoint": "https://user:<redacted>@host/db"}


def test_no_credential_appears_in_any_output(
    monkeypatch: pytest.MonkeyPatch, clearml_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Credentials in the environment, a secret argument and a failing ClearML: none of it is written anywhere."""
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", ACCESS)
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", SECRET)
    monkeypatch.setenv("CLEARML_API_HOST", "http://127.0.0.1:9")

    @tracked_eval(offline=True)
    def evaluate(api_token: str, note: str) -> Iterator[dict[str, object]]:
        yield {"acc": 1.0, "prediction": f"the key is {SECRET}"}
        raise RuntimeError(f"auth failed with {ACCESS}")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError):
            evaluate(TOKEN_ARG, note=SECRET)
    written = all_text(clearml_cache)
    out = capsys.readouterr()
    shown = "\n".join([written, out.out, out.err, *(str(w.message) for w in caught)])
    assert "acc" in written  # the search did see the session
    for secret in (ACCESS, SECRET, TOKEN_ARG):
        assert secret not in shown.replace(written, ""), "printed or warned"
        assert secret not in written, "written"


def test_credentials_in_clearml_conf_are_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key from clearml.conf (not the environment) is redacted from arguments too."""
    conf = tmp_path / "clearml.conf"
    conf.write_text(
        'api { api_server: "http://127.0.0.1:9"\n'
        f'  credentials {{ access_key: "{ACCESS}", secret_key: "{SECRET}" }} }}\n'
    )
    monkeypatch.setenv("CLEARML_CONFIG_FILE", str(conf))
    from clearml.config import ConfigWrapper

    monkeypatch.setattr(ConfigWrapper, "_config", None)  # reload with this file
    from tracked.common.secrets import credentials

    assert ACCESS in credentials()

    @tracked_eval(verbose=False)
    def evaluate(note: str) -> Iterator[float]:
        yield 1.0

    with pytest.warns(TrackedWarning, match="did not answer"):  # the configured server is a closed port
        result = evaluate(f"key={ACCESS}")
    params = read_session(result.session_dir).hyperparameters["Args"]
    assert params["note"] == "key=<redacted>"


def test_credentials_in_metric_and_detail_names_are_redacted(
    monkeypatch: pytest.MonkeyPatch, clearml_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names are text tracked writes too: the journal, the chart, the tables and the examples artifact."""
    from tracked import batch

    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", ACCESS)

    @tracked_eval(offline=True, flush_interval=0.01)
    def evaluate() -> Iterator[Any]:
        for _ in range(3):
            yield {"acc": 1.0, f"m_{ACCESS}": 0.5, f"pred_{ACCESS}": "v"}
        yield batch(acc=[1.0], **{f"col_{ACCESS}": ["x"]})

    evaluate()
    written = all_text(clearml_cache)
    out = capsys.readouterr()
    assert "acc" in written
    assert ACCESS not in written
    assert ACCESS not in out.out + out.err
