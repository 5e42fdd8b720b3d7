"""Settings from environment variables (`tasks/env_settings.py`): unset or blank is the
default, a value the setting cannot take is a clear error naming the variable and the value."""

from __future__ import annotations

import pytest

from flows.errors import EnvSettingError as PublicEnvSettingError
from plan_parser.errors import PlanExecutorError
from tasks.env_settings import EnvSettingError, env_seconds, env_seconds_list

NAME = "PLAN_EXECUTOR_TEST_SETTING_S"


def test_seconds_unset_or_blank_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)
    assert env_seconds(NAME, 600.0) == 600.0
    monkeypatch.setenv(NAME, "  ")
    assert env_seconds(NAME, 600.0) == 600.0


@pytest.mark.parametrize(("raw", "value"), [("2.5", 2.5), (" 60 ", 60.0), ("1e3", 1000.0)])
def test_seconds_reads_a_positive_number(
    monkeypatch: pytest.MonkeyPatch, raw: str, value: float
) -> None:
    monkeypatch.setenv(NAME, raw)
    assert env_seconds(NAME, 600.0) == value


@pytest.mark.parametrize("raw", ["soon", "0", "-1", "nan", "inf", "10s", "1,2"])
def test_a_bad_number_of_seconds_names_the_variable_the_value_and_what_is_expected(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(EnvSettingError) as caught:
        env_seconds(NAME, 600.0)
    message = str(caught.value)
    assert (
        message == f"{NAME}={raw!r} is not valid: expected a positive number of seconds (e.g. 600)"
    )
    assert (caught.value.name, caught.value.raw) == (NAME, raw)


def test_the_error_is_a_public_product_error_and_still_a_value_error() -> None:
    assert PublicEnvSettingError is EnvSettingError
    assert issubclass(EnvSettingError, PlanExecutorError)
    assert issubclass(EnvSettingError, ValueError)  # what the API timeout raised before


def test_seconds_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)
    assert env_seconds_list(NAME) is None
    monkeypatch.setenv(NAME, " ")
    assert env_seconds_list(NAME) is None
    monkeypatch.setenv(NAME, "30,120")
    assert env_seconds_list(NAME) == [30.0, 120.0]
    monkeypatch.setenv(NAME, " 0.2 , 0 ,")  # spaces and an empty item are no values
    assert env_seconds_list(NAME) == [0.2, 0.0]


@pytest.mark.parametrize("raw", ["1,soon", "-1", "5,nan", "1;2", "inf"])
def test_a_bad_list_of_seconds_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(EnvSettingError, match=NAME) as caught:
        env_seconds_list(NAME)
    assert repr(raw) in str(caught.value) and "comma-separated numbers of seconds" in str(
        caught.value
    )


def test_the_three_settings_use_the_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API timeout, the question timeout and the agent restart delays all refuse a bad value
    the same way (the question timeout used to fall back to an hour without a word)."""
    from flows.approvals import (
        DEFAULT_QUESTION_TIMEOUT_S,
        QUESTION_TIMEOUT_ENV,
        question_timeout_s,
    )
    from flows.phase import AGENT_RETRY_DELAYS_ENV, _agent_step
    from tasks.agent.loop import API_TIMEOUT_ENV, request_timeout_s
    from tasks.phase_steps import agent_step

    monkeypatch.delenv(QUESTION_TIMEOUT_ENV, raising=False)
    assert question_timeout_s() == DEFAULT_QUESTION_TIMEOUT_S
    monkeypatch.setenv(QUESTION_TIMEOUT_ENV, "90")
    assert question_timeout_s() == 90.0
    monkeypatch.delenv(AGENT_RETRY_DELAYS_ENV, raising=False)
    assert _agent_step() is agent_step
    monkeypatch.setenv(AGENT_RETRY_DELAYS_ENV, "1,2,3")
    restarted = _agent_step()
    assert (restarted.retries, restarted.retry_delay_seconds) == (3, [1.0, 2.0, 3.0])

    for name, read in [
        (API_TIMEOUT_ENV, request_timeout_s),
        (QUESTION_TIMEOUT_ENV, question_timeout_s),
        (AGENT_RETRY_DELAYS_ENV, _agent_step),
    ]:
        monkeypatch.setenv(name, "soon")
        with pytest.raises(EnvSettingError, match=f"^{name}='soon' is not valid: expected "):
            read()


@pytest.mark.parametrize(
    "name",
    [
        "PLAN_EXECUTOR_API_TIMEOUT_S",
        "PLAN_EXECUTOR_QUESTION_TIMEOUT_S",
        "PLAN_EXECUTOR_AGENT_RETRY_DELAYS_S",
    ],
)
def test_the_run_start_check_reads_every_setting(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    from tasks.env_settings import check_env_settings

    for other in ("API_TIMEOUT", "QUESTION_TIMEOUT", "AGENT_RETRY_DELAYS"):
        monkeypatch.delenv(f"PLAN_EXECUTOR_{other}_S", raising=False)
    check_env_settings()
    monkeypatch.setenv(name, "-1")
    with pytest.raises(EnvSettingError, match=f"^{name}='-1' is not valid"):
        check_env_settings()
