"""E-mail for a dunning action: build the message and hand it to a sender.

Two senders share the ``EmailSender`` protocol:

- ``SmtpSender("smtp://user:pass@host:port")`` talks to a mail server with smtplib;
  ``smtps://`` uses implicit TLS (default port 465), ``smtp+starttls://`` upgrades a
  plain connection (default port 587), ``smtp://`` stays plain (default port 25).
- ``OutboxFolderSender(path)`` writes ``<action id>.eml`` files, the embedded default.

``sender_from_env()`` picks SMTP when ``SMTP_URL`` is set, else the folder
``MAIL_OUTBOX_DIR`` (default ``var/outbox``). The From address is ``MAIL_FROM``.
"""

from __future__ import annotations

import hashlib
import os
import re
import smtplib
import ssl
import tempfile
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Mapping, Optional, Protocol
from urllib.parse import unquote, urlsplit

from sinks.render import RenderedMessage
from streams.core.events import DunningActionDue

DEFAULT_MAIL_FROM = "debiteurenbeheer@localhost"
DEFAULT_OUTBOX_DIR = "var/outbox"
ACTION_ID_HEADER = "X-Dunning-Action-Id"
MESSAGE_ID_DOMAIN = "dunning"

_DEFAULT_PORTS = {"smtp": 25, "smtps": 465, "smtp+starttls": 587}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_DOTS = re.compile(r"\.{2,}")


class EmailSender(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Deliver the message or raise (smtplib.SMTPException or OSError)."""


def safe_token(action_id: str) -> str:
    """The action id made safe for a Message-ID and a file name, still unique.

    Ids that need no change stay readable as they are; otherwise the unsafe characters
    become "_" and a short hash of the original keeps distinct ids distinct.
    """
    token = _DOTS.sub("_", _UNSAFE.sub("_", action_id)).strip(".")
    if token == action_id and token:
        return token
    digest = hashlib.sha256(action_id.encode()).hexdigest()[:10]
    return f"{token}-{digest}" if token else digest


def message_id_for(action_id: str) -> str:
    """Deterministic, so a server or reader can drop a second copy of the same action."""
    return f"<{safe_token(action_id)}@{MESSAGE_ID_DOMAIN}>"


def build_email(
    action: DunningActionDue, rendered: RenderedMessage, mail_from: str, sent_at: datetime
) -> EmailMessage:
    if not action.email:
        raise ValueError(f"action {action.action_id!r} has no e-mail address")
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = action.email
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = message_id_for(action.action_id)
    message["Content-Language"] = action.language
    message[ACTION_ID_HEADER] = action.action_id
    message.set_content(rendered.body_text)
    if rendered.body_html is not None:
        message.add_alternative(rendered.body_html, subtype="html")
    return message


class SmtpSender:
    """One SMTP connection per message: the sink loop is synchronous and low-volume."""

    def __init__(self, url: str, timeout: float = 30.0):
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS:
            raise ValueError(
                f"unsupported SMTP URL scheme {parts.scheme!r} "
                f"(use one of: {', '.join(_DEFAULT_PORTS)})"
            )
        if not parts.hostname:
            raise ValueError("SMTP URL has no host")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self.username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else ""
        self.timeout = timeout

    def __repr__(self) -> str:  # never show the password
        user = f"{self.username}:***@" if self.username else ""
        return f"SmtpSender('{self.scheme}://{user}{self.host}:{self.port}')"

    def send(self, message: EmailMessage) -> None:
        with self._connect() as client:
            if self.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if self.username:
                client.login(self.username, self._password)
            refused = client.send_message(message)
        if refused:  # some recipients accepted, others not: treat as a failure
            raise smtplib.SMTPRecipientsRefused(refused)

    def _connect(self) -> smtplib.SMTP:
        if self.scheme == "smtps":
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)


class OutboxFolderSender:
    """Writes each message to ``<folder>/<action id>.eml``; a resend overwrites it."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"OutboxFolderSender({str(self.path)!r})"

    def file_for(self, action_id: str) -> Path:
        return self.path / f"{safe_token(action_id)}.eml"

    def send(self, message: EmailMessage) -> None:
        action_id = message[ACTION_ID_HEADER]
        if not action_id:
            raise ValueError(f"message has no {ACTION_ID_HEADER} header")
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.file_for(str(action_id))
        # Write aside, then rename: a reader never sees half a message.
        with tempfile.NamedTemporaryFile(dir=self.path, suffix=".tmp", delete=False) as handle:
            handle.write(message.as_bytes())
        os.replace(handle.name, target)


def mail_from_env(environ: Optional[Mapping[str, str]] = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get("MAIL_FROM") or DEFAULT_MAIL_FROM


def sender_from_env(environ: Optional[Mapping[str, str]] = None) -> EmailSender:
    environ = os.environ if environ is None else environ
    url = environ.get("SMTP_URL")
    if url:
        return SmtpSender(url)
    return OutboxFolderSender(environ.get("MAIL_OUTBOX_DIR") or DEFAULT_OUTBOX_DIR)
