"""Process settings from LISTENER_* variables and flags."""

from __future__ import annotations

from datetime import timedelta

import pytest

from listener.errors import ConfigError
from listener.settings import Settings


def test_defaults() -> None:
    """Without variables the daemon uses its embedded defaults on loopback."""
    s = Settings.from_env({})
    assert (s.config, s.state, s.listen) == ("rules.yaml", "listener.db", "127.0.0.1:9464")


def test_env_then_flags() -> None:
    """Flags override the environment, which overrides the defaults."""
    env = {
        "LISTENER_STATE": "/var/lib/x.db",
        "LISTENER_LISTEN": "0.0.0.0:1",
        "LISTENER_EVALUATE_EVERY": "5s",
    }
    s = Settings.from_env(env, listen="127.0.0.1:2", state=None)
    assert s.state == "/var/lib/x.db"
    assert s.listen == "127.0.0.1:2"
    assert s.evaluate_every == timedelta(seconds=5)


def test_bad_values_are_config_errors() -> None:
    """Bad variables are reported by name with the known values."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"LISTENER_LOG_FORMAT": "xml", "LISTENER_EVALUATE_EVERY": "soon"})
    text = str(info.value)
    assert "LISTENER_LOG_FORMAT" in text
    assert "known: auto, json, console" in text
    assert "LISTENER_EVALUATE_EVERY" in text


def test_poll_timeout_and_queue_bound() -> None:
    """LISTENER_POLL_TIMEOUT is a positive duration and LISTENER_QUEUE_MAX_MENTIONS a
    positive whole number; both have defaults."""
    s = Settings.from_env({})
    assert (s.poll_timeout, s.queue_max_mentions) == (timedelta(minutes=2), 20_000)
    s = Settings.from_env({"LISTENER_POLL_TIMEOUT": "30s", "LISTENER_QUEUE_MAX_MENTIONS": "500"})
    assert (s.poll_timeout, s.queue_max_mentions) == (timedelta(seconds=30), 500)
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"LISTENER_POLL_TIMEOUT": "0", "LISTENER_QUEUE_MAX_MENTIONS": "lots"})
    assert "LISTENER_POLL_TIMEOUT: must be above 0" in str(info.value)
    assert "LISTENER_QUEUE_MAX_MENTIONS: not a positive whole number: 'lots'" in str(info.value)
    with pytest.raises(ConfigError, match="LISTENER_QUEUE_MAX_MENTIONS"):
        Settings.from_env({"LISTENER_QUEUE_MAX_MENTIONS": "0"})


def test_console_refresh_is_whole_seconds_from_one() -> None:
    """LISTENER_CONSOLE_REFRESH: the console's live-update interval in whole seconds, at
    least 1; unset, the console's own default."""
    assert Settings.from_env({}).console_refresh is None
    assert Settings.from_env({"LISTENER_CONSOLE_REFRESH": "5"}).console_refresh == 5
    for bad in ("0", "-3", "2.5", "30s", ""):
        with pytest.raises(ConfigError, match="LISTENER_CONSOLE_REFRESH: not a positive whole"):
            Settings.from_env({"LISTENER_CONSOLE_REFRESH": bad})
