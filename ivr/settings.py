"""The line's settings: one typed class, read from `IVR_*` environment variables or `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ivr.hours import OpeningHours

REPO_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_TOKEN = "embedded-demo-token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class Settings(BaseSettings):
    """Everything an operator may set. Init arguments beat the environment (tests use them)."""

    model_config = SettingsConfigDict(env_prefix="IVR_", env_file=".env", extra="ignore")

    public_base_url: str = "http://127.0.0.1:8080"
    data_dir: Path = Path("var")
    database_url: str | None = None
    secret_key: SecretStr | None = None

    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: SecretStr = SecretStr(EMBEDDED_TOKEN)
    twilio_api_base_url: str | None = None

    sms_backend: Literal["embedded", "twilio"] = "embedded"
    sms_sender: str | None = "MitID"
    sms_messaging_service_sid: str | None = None
    demo_sms_to: str | None = Field(None, pattern=r"^\+[1-9][0-9]{7,14}$")
    """With `IVR_SMS_BACKEND=twilio`: the one phone (your own, E.164) every SMS goes to. The only
    register is the demo one, whose valid-looking mobiles may belong to real strangers."""
    sms_timeout_seconds: float = Field(5.0, gt=0, le=15)
    """The caller waits on the line for this, at most, to hear whether the SMS went."""

    call_control: Literal["embedded", "twilio"] = "embedded"
    """How the agents' desk puts a queued caller through: Twilio's REST API, or the line itself."""

    flows_dir: Path = REPO_ROOT / "call_flows"
    flow: str = "support"
    prompts_dir: Path = REPO_ROOT / "prompts"
    agent_queue: str = "mitid-support"
    agent_minutes_per_caller: float = Field(3.0, gt=0)

    questions_asked: int = Field(3, ge=1, le=6)
    questions_pass_mark: int = Field(3, ge=1, le=6)
    identity_max_failures: int = Field(3, ge=1)
    identity_failure_window_hours: float = 24
    identity_lockout_hours: float = 24
    caller_verifications_per_hour: int = Field(5, ge=1)
    withheld_verifications_per_hour: int = Field(30, ge=1)
    """Calls from withheld numbers share one bucket of their own (see README)."""
    stale_call_minutes: float = Field(120, gt=0)
    """A call with no end-of-call status after this long is scrubbed like an ended one."""
    sweep_interval_seconds: float = Field(300, gt=0)
    mobile_quarantine_hours: float = 120
    temporary_pin_validity_minutes: int = Field(60 * 24, ge=1)

    opening_hours: OpeningHours = OpeningHours()

    desk_base_url: str = "http://127.0.0.1:8081"
    """Where agents reach the agents' desk (`ivr desk`); https makes its cookies Secure."""
    desk_idle_minutes: float = Field(15, gt=0)
    """An agent's session ends after this long without a request."""
    desk_sign_in_failures: int = Field(5, ge=1)
    """Sign-ins one username may try in 15 minutes before the desk refuses more."""

    log_format: Literal["text", "json"] = "text"
    """`json`: one JSON object a line (with the call SID and step), for a log collector."""
    metrics_host: str = "127.0.0.1"
    """Where `ivr serve` serves its Prometheus metrics: never the public webhook server."""
    metrics_port: int | None = Field(None, ge=1, le=65535)
    """The metrics port; unset, no metrics server is started."""

    demo_backend_database_url: str | None = None
    demo_seed: int = 2026
    demo_people: int = Field(1000, ge=20)

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("twilio_auth_token")
    @classmethod
    def _a_real_token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("is empty: anyone could sign webhooks; give the Twilio account's auth token")
        return value

    @field_validator("secret_key")
    @classmethod
    def _a_real_key(cls, value: SecretStr | None) -> SecretStr | None:
        key = value.get_secret_value() if value is not None else None
        if key is not None and (len(key.strip()) < 32 or "change-me" in key):
            raise ValueError(
                "must be at least 32 random characters (e.g. `python3 -c 'import secrets; "
                "print(secrets.token_hex(32))'`), or unset to keep one in the data directory (SQLite only)"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.questions_pass_mark > self.questions_asked:
            raise ValueError("IVR_QUESTIONS_PASS_MARK cannot exceed IVR_QUESTIONS_ASKED")
        host = urlsplit(self.public_base_url).hostname or ""
        embedded_token = self.twilio_auth_token.get_secret_value() == EMBEDDED_TOKEN
        if embedded_token and host not in LOOPBACK_HOSTS:
            raise ValueError("a line reachable from outside needs its own IVR_TWILIO_AUTH_TOKEN")
        if self.sms_backend == "twilio" and self.demo_sms_to is None:
            raise ValueError(
                "IVR_SMS_BACKEND=twilio sends real SMS, but the register is the demo one, whose mobiles "
                "may be real strangers' numbers: set IVR_DEMO_SMS_TO to your own phone (E.164), which "
                "then gets every SMS"
            )
        if self.shared_store and self.secret_key is None:
            raise ValueError(
                "IVR_DATABASE_URL names a shared database, so every machine must key pseudonyms alike: "
                "set IVR_SECRET_KEY, the same on each (a key kept in each data directory would split "
                "the limits and locks)"
            )
        return self

    @property
    def shared_store(self) -> bool:
        """The store is a database server that several machines may share (not SQLite)."""
        return self.database_url is not None and not self.database_url.startswith("sqlite")

    @property
    def sqlalchemy_url(self) -> str:
        """The store's URL: the configured one, or SQLite in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'ivr.sqlite3'}"

    @property
    def demo_sqlalchemy_url(self) -> str:
        """The demo outside systems' URL (CPR register, MitID back end, SMS network): configured;
        else the store's, when it is shared (every machine must see the same PINs); else SQLite."""
        if self.demo_backend_database_url:
            return self.demo_backend_database_url
        if self.shared_store and self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'mitid-demo.sqlite3'}"

    def private_data_dir(self) -> Path:
        """The data directory, made if missing, readable by its owner only."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        return self.data_dir

    def secret_key_bytes(self) -> bytes:
        """The key for pseudonymising identities: configured, or kept in the data directory."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.private_data_dir() / "secret.key"
        if not path.exists():
            import os
            import secrets

            descriptor = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_hex(32))
        return path.read_text().strip().encode()
