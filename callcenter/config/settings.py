"""PBX connection details and secrets from the environment (``CALLCENTER_*``) or a secrets file.

These give *defaults*: a value set in the YAML config file wins over the environment. Precedence,
strongest first: the config file, the environment, the secrets file named by
``CALLCENTER_SECRETS_FILE``, the built-in defaults.

The secrets file holds the same keys as the environment, either env-style::

    CALLCENTER_AMI_SECRET=s3cret
    export CALLCENTER_ESL_PASSWORD='ClueCon'

or as a YAML mapping (``CALLCENTER_AMI_SECRET: s3cret``; the ``CALLCENTER_`` prefix may be left
out). Its values are taken as written, never reinterpreted by YAML.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

import structlog
import yaml
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from callcenter.errors import ConfigError, ConfigIssue

log = structlog.get_logger(__name__)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENVIRONMENT",
    "ENV_PREFIX",
    "Settings",
    "read_settings",
    "settings_and_issues",
]

ENV_PREFIX = "CALLCENTER_"
DEFAULT_CONFIG_PATH = Path("config/callcenter.yaml")
ENVIRONMENT = "environment"
"""The ``file`` of a :class:`ConfigIssue` about an environment variable."""

_ENV_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)")


class Settings(BaseSettings):
    """Values from ``CALLCENTER_*`` environment variables (see :func:`read_settings`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    ami_secret: SecretStr | None = Field(
        default=None, description="AMI password (CALLCENTER_AMI_SECRET)."
    )
    ami_username: str | None = Field(
        default=None, description="AMI user (CALLCENTER_AMI_USERNAME)."
    )
    ami_host: str | None = Field(default=None, description="AMI host (CALLCENTER_AMI_HOST).")
    ami_port: int | None = Field(
        default=None, ge=1, le=65535, description="AMI port (CALLCENTER_AMI_PORT)."
    )
    esl_password: SecretStr | None = Field(
        default=None, description="FreeSWITCH event socket password (CALLCENTER_ESL_PASSWORD)."
    )
    postgres_password: SecretStr | None = Field(
        default=None, description="PostgreSQL records password (CALLCENTER_POSTGRES_PASSWORD)."
    )
    mqtt_password: SecretStr | None = Field(
        default=None, description="MQTT broker password (CALLCENTER_MQTT_PASSWORD)."
    )
    api_token: SecretStr | None = Field(
        default=None, description="Control API bearer token (CALLCENTER_API_TOKEN)."
    )
    config: Path = Field(
        default=DEFAULT_CONFIG_PATH,
        description="Config file used when the command line names none (CALLCENTER_CONFIG).",
    )
    secrets_file: Path | None = Field(
        default=None,
        description="File of KEY=value secrets read as a fallback (CALLCENTER_SECRETS_FILE).",
    )

    def config_overrides(self) -> dict[tuple[str, ...], object]:
        """Config field path -> value, for every setting that was given."""
        pairs: list[tuple[tuple[str, ...], object]] = [
            (("pbx", "ami", "secret"), self.ami_secret),
            (("pbx", "ami", "username"), self.ami_username),
            (("pbx", "ami", "host"), self.ami_host),
            (("pbx", "ami", "port"), self.ami_port),
            (("pbx", "esl", "password"), self.esl_password),
            (("mqtt", "password"), self.mqtt_password),
            (("api", "token"), self.api_token),
            (("records", "postgres_password"), self.postgres_password),
        ]
        return {path: value for path, value in pairs if value is not None}


def _env_var(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _field_for(key: str) -> str:
    """The Settings field a secrets-file key names (prefix and case are optional)."""
    key = key.strip().upper()
    return key.removeprefix(ENV_PREFIX).lower()


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


_Found = dict[str, tuple[str, int]]
"""Settings field -> (value as written, line) from a secrets file."""


def _parse_env_style(
    path: Path, numbered: list[tuple[int, str]]
) -> tuple[_Found, list[ConfigIssue]]:
    found: _Found = {}
    issues: list[ConfigIssue] = []
    for number, text in numbered:
        match = _ENV_LINE.fullmatch(text)
        if match is None:
            issues.append(ConfigIssue(str(path), number, "", "expected a KEY=value line"))
        else:
            found[_field_for(match.group(1))] = (_unquote(match.group(2)), number)
    return found, issues


def _parse_yaml_style(path: Path, text: str) -> tuple[_Found, list[ConfigIssue]]:
    found: _Found = {}
    issues: list[ConfigIssue] = []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        return {}, [
            ConfigIssue(str(path), where, "", f"neither KEY=value lines nor YAML: {problem}")
        ]
    if not isinstance(root, yaml.MappingNode):
        where = root.start_mark.line + 1 if root is not None else None
        return {}, [ConfigIssue(str(path), where, "", "expected KEY=value or KEY: value lines")]
    for key_node, value_node in root.value:
        number = key_node.start_mark.line + 1
        if not (isinstance(key_node, yaml.ScalarNode) and isinstance(value_node, yaml.ScalarNode)):
            issues.append(ConfigIssue(str(path), number, "", "expected KEY: value"))
            continue
        # The text as written: a secret 0123 stays "0123", never the octal number 83.
        found[_field_for(key_node.value)] = (value_node.value, number)
    return found, issues


def _parse_secrets(path: Path, text: str) -> tuple[_Found, list[ConfigIssue]]:
    """Field -> (value, line) from an env-style or YAML secrets file, and its problems."""
    numbered = [
        (number, line)
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if any(_ENV_LINE.fullmatch(line) for _, line in numbered):
        found, issues = _parse_env_style(path, numbered)
    elif numbered:
        found, issues = _parse_yaml_style(path, text)
    else:
        found, issues = {}, []
    known = [f for f in Settings.model_fields if f != "secrets_file"]
    for name, (_, number) in list(found.items()):
        if name not in known:
            del found[name]
            hint = did_you_mean_env(name, known)
            issues.append(ConfigIssue(str(path), number, _env_var(name), f"unknown key{hint}"))
    return found, issues


def did_you_mean_env(name: str, known: list[str]) -> str:
    """``"; did you mean CALLCENTER_X?"`` for a misspelt settings key, or ``""``."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {_env_var(close[0])}?" if close else ""


def _read_secrets_file(path: Path) -> tuple[_Found, list[ConfigIssue]]:
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return {}, [
            ConfigIssue(
                ENVIRONMENT, None, "CALLCENTER_SECRETS_FILE", f"cannot read {path}: {reason}"
            )
        ]
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("secrets_file_readable_by_others", path=str(path), mode=oct(mode & 0o777))
    return _parse_secrets(path, text)


def settings_and_issues(
    environ: Mapping[str, str] | None = None,
) -> tuple[Settings, list[ConfigIssue]]:
    """Like :func:`read_settings`, but returns the problems beside the settings.

    Invalid values are left out (as if unset) so the valid ones still apply: a mistyped port
    does not also hide the secret.
    """
    env = os.environ if environ is None else environ
    issues: list[ConfigIssue] = []
    values: dict[str, object] = {}
    origin: dict[str, tuple[str, int | None, str]] = {}
    fields = list(Settings.model_fields)

    from_env = {f: env[_env_var(f)] for f in fields if env.get(_env_var(f), "").strip()}
    secrets_path = from_env.get("secrets_file")
    if secrets_path is not None:
        found, issues = _read_secrets_file(Path(secrets_path).expanduser())
        for name, (value, number) in found.items():
            values[name] = value
            origin[name] = (str(Path(secrets_path)), number, _env_var(name))
    for name, value in from_env.items():
        values[name] = value
        origin[name] = (ENVIRONMENT, None, _env_var(name))
    # Every field is passed explicitly, so BaseSettings never falls back to os.environ.
    defaults = {
        f: info.get_default(call_default_factory=True) for f, info in Settings.model_fields.items()
    }
    while True:
        try:
            return Settings(**{**defaults, **values}), issues
        except ValidationError as exc:
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else ""
                file, line, var = origin.get(name, (ENVIRONMENT, None, _env_var(name)))
                message = error["msg"].replace("Input should be", "must be")
                issues.append(ConfigIssue(file, line, var, message))
                if values.pop(name, None) is None:
                    return Settings(**defaults), issues


def read_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (default ``os.environ``) and the secrets file it names.

    Only ``environ`` is read (not the process environment) when it is given, which keeps tests
    hermetic. Empty variables count as unset; the environment wins over the secrets file.
    Raises :class:`ConfigError` listing every bad variable or secrets-file line.
    """
    settings, issues = settings_and_issues(environ)
    if issues:
        raise ConfigError(issues)
    return settings
