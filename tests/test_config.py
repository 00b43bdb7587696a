from pathlib import Path

import pytest

from serving.config import Settings, SettingsError


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.stage, s.port, s.timeout, s.max_request_bytes, s.model_dir) == (
        "classify", 8080, 60, 6 * 1024 * 1024, "/opt/ml/model")
    assert s.workers >= 1
    assert s.huge_pages is True
    assert Settings.from_env({"SERVING_HUGE_PAGES": " OFF "}).huge_pages is False


def test_sagemaker_variables() -> None:
    s = Settings.from_env({"SAGEMAKER_BIND_TO_PORT": "9090", "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
                           "SAGEMAKER_SAFE_PORT_RANGE": "9000-9999", "SERVING_STAGE": "recommend",
                           "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
                           "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20", "SAGEMAKER_BATCH": "true"})
    assert (s.port, s.workers, s.safe_port_range, s.stage, s.default_accept) == (
        9090, 3, (9000, 9999), "recommend", "text/csv")
    assert s.max_payload_mb == 20 and s.max_request_bytes == 20 * 1024 * 1024 and s.batch


@pytest.mark.parametrize(("cpus", "workers"), [(1, 1), (96, 96), (192, 192), (512, 256)])
def test_default_workers_follow_the_cpus_on_any_instance(monkeypatch: pytest.MonkeyPatch,
                                                         cpus: int, workers: int) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    assert Settings.from_env({}).workers == workers
    with pytest.raises(SettingsError, match=r"outside 1\.\.256"):
        Settings.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "257"})


def test_legacy_names_and_precedence() -> None:
    assert Settings.from_env({"MODEL_SERVER_WORKERS": "5"}).workers == 5
    assert Settings.from_env({"MODEL_SERVER_WORKERS": "5",
                              "SAGEMAKER_MODEL_SERVER_WORKERS": "2"}).workers == 2


@pytest.mark.parametrize("env", [
    {"SERVING_STAGE": "nope"}, {"SAGEMAKER_BIND_TO_PORT": "http"},
    {"SAGEMAKER_BIND_TO_PORT": "70000"}, {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "101"},
    {"SAGEMAKER_SAFE_PORT_RANGE": "9-2"}, {"SERVING_LOG_LEVEL": "LOUD"},
    {"SERVING_HUGE_PAGES": "sometimes"}, {"SERVING_NUM_TOPICS": "0"},
    {"SAGEMAKER_BATCH": "true", "SERVING_MAX_REQUEST_BYTES": "1048576"},
])
def test_bad_values(env) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_replace_validates() -> None:
    s = Settings.from_env({})
    assert s.replace(port=1234).port == 1234
    with pytest.raises(SettingsError):
        s.replace(stage="x")
    with pytest.raises(TypeError):
        s.replace(colour="red")


@pytest.mark.parametrize("changes", [
    {"workers": 0}, {"port": 0}, {"port": 99999}, {"timeout": 0}, {"graceful_timeout": 29},
    {"front_end": "apache"}, {"client_timeout": 0}, {"max_request_bytes": 10}, {"port": "80"},
    {"log_level": "LOUD"}, {"num_topics": -1},
])
def test_replace_meets_the_same_validator_as_the_environment(changes) -> None:
    """Command-line overrides go through dataclasses.replace and Settings.__post_init__."""
    with pytest.raises(SettingsError):
        Settings.from_env({}).replace(**changes)


def test_front_end_settings() -> None:
    assert (Settings.from_env({}).front_end, Settings.from_env({}).client_timeout) == ("nginx", 10)
    s = Settings.from_env({"SERVING_FRONT_END": "none", "SERVING_CLIENT_TIMEOUT": "30"})
    assert (s.front_end, s.client_timeout) == ("none", 30)
    for env in ({"SERVING_FRONT_END": "haproxy"}, {"SERVING_CLIENT_TIMEOUT": "0"},
                {"SAGEMAKER_MODEL_SERVER_WORKERS": "0"}):
        with pytest.raises(SettingsError, match=next(iter(env))):
            Settings.from_env(env)


def test_host_is_loopback_outside_the_image() -> None:
    # The CLI server stays on loopback by default; the image sets SERVING_HOST=0.0.0.0 (its
    # container tests publish the port, which only works when it listens on every interface).
    assert Settings.from_env({}).host == "127.0.0.1"
    assert Settings.from_env({"SERVING_HOST": "0.0.0.0"}).host == "0.0.0.0"
    dockerfile = (Path(__file__).resolve().parents[1] / "Dockerfile").read_text()
    assert "SERVING_HOST=0.0.0.0" in dockerfile


def test_each_error_names_the_variable_that_was_set() -> None:
    with pytest.raises(SettingsError, match="SAGEMAKER_MAX_PAYLOAD_IN_MB"):
        Settings.from_env({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "101"})
    with pytest.raises(SettingsError, match="is below SAGEMAKER_MAX_PAYLOAD_IN_MB=6 MB"):
        Settings.from_env({"SAGEMAKER_BATCH": "true", "SERVING_MAX_REQUEST_BYTES": "1024"})
    assert Settings.from_env({"SERVING_MAX_REQUEST_BYTES": "1024"}).max_request_bytes == 1024
    assert Settings.from_env({"SERVING_NUM_TOPICS": " "}).num_topics is None
