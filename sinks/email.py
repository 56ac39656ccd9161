"""E-mail for a dunning action: build the message and hand it to a sender.

Two senders share the ``EmailSender`` protocol:

- ``SmtpSender("smtp://user:pass@host:port")`` talks to a mail server with smtplib;
  ``smtps://`` uses implicit TLS (default port 465), ``smtp+starttls://`` upgrades a
  plain connection (default port 587), ``smtp://`` stays plain (default port 25).
- ``OutboxFolderSender(path)`` writes ``<action id>.eml`` files, the embedded default.

``EmailChannel`` is the e-mail channel of the sink (``sinks.registry``): it renders the
action, builds the message and sends it once per action id through the outbox.
"""

from __future__ import annotations

import email.policy
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
from typing import Callable, Protocol
from urllib.parse import unquote, urlsplit

import structlog
from jinja2 import TemplateError

from sinks.delivery import FAILED, SENT, Outcome, SendDeferred, SinkParts
from sinks.metrics import MESSAGES, UNCERTAIN_RESENDS
from sinks.outbox import Claim
from sinks.render import RenderedMessage, UnknownTemplateError, render_message
from streams.core.events import DunningActionDue

DEFAULT_MAIL_FROM = "debiteurenbeheer@localhost"
ACTION_ID_HEADER = "X-Dunning-Action-Id"

log = structlog.get_logger(__name__)
MESSAGE_ID_DOMAIN = "dunning"

_DEFAULT_PORTS = {"smtp": 25, "smtps": 465, "smtp+starttls": 587}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_DOTS = re.compile(r"\.{2,}")


class EmailSender(Protocol):
    def send(self, message: EmailMessage, hand_over: Callable[[], bool] = lambda: True) -> None:
        """Deliver the message or raise (smtplib.SMTPException or OSError). ``hand_over`` is
        called just before the step after which the message may have arrived; if it
        returns False nothing is delivered and ``HandOverRefused`` is raised."""


class HandOverRefused(RuntimeError):
    """The send's claim was taken over by another attempt: this one delivers nothing."""


def is_transient_smtp_error(error: BaseException) -> bool:
    """Whether a later attempt may succeed: the server out of reach, a dropped connection,
    or a 4xx answer ("try again later"). A 5xx answer or a login refused is for good."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return bool(error.recipients) and all(400 <= code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500 and not isinstance(error, smtplib.SMTPAuthenticationError)
    return isinstance(error, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError))


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
    """One SMTP connection per message: the sink sends one action at a time."""

    def __init__(self, url: str, timeout: float = 30.0):
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in _DEFAULT_PORTS:
            raise ValueError(
                f"unsupported SMTP URL scheme {parts.scheme!r} "
                f"(use one of: {', '.join(_DEFAULT_PORTS)})"
            )
        # Errors name the URL without what stands before the host: a password with an
        # unencoded "/" or "@" would otherwise show up in them.
        if not parts.hostname or port == -1 or parts.path or parts.query or parts.fragment:
            raise ValueError(
                "SMTP_URL is not of the form scheme://user:password@host:port (percent-encode a / @ ? or # in "
                "the user name or password, e.g. %2F for /)"
            )
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = port or _DEFAULT_PORTS[parts.scheme]
        self.username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else ""
        self.timeout = timeout

    def __repr__(self) -> str:  # never show the password
        user = f"{self.username}:***@" if self.username else ""
        return f"SmtpSender('{self.scheme}://{user}{self.host}:{self.port}')"

    def send(self, message: EmailMessage, hand_over: Callable[[], bool] = lambda: True) -> None:
        # smtplib's send_message() in its steps, so that the end of the data (the point
        # after which the server may have the message) is sent only after ``hand_over``.
        sender, recipient = message["From"].addresses[0].addr_spec, message["To"].addresses[0].addr_spec
        data = _DOT_AT_LINE_START.sub(b"..", message.as_bytes(policy=email.policy.SMTP))
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        with self._connect() as client:
            if self.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if self.username:
                client.login(self.username, self._password)
            client.ehlo_or_helo_if_needed()
            options = ["SMTPUTF8"] if not message.as_string().isascii() and client.has_extn("smtputf8") else []
            code, reply = client.mail(sender, options)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, sender)
            code, reply = client.rcpt(recipient)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
            code, reply = client.docmd("DATA")
            if code != 354:
                raise smtplib.SMTPDataError(code, reply)
            client.send(data)
            if not hand_over():
                raise HandOverRefused("another attempt took this action over; the message was not completed")
            client.send(b".\r\n")
            code, reply = client.getreply()
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)

    def _connect(self) -> smtplib.SMTP:
        if self.scheme == "smtps":
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)


_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")  # a line that starts with "." gets another (RFC 5321 4.5.2)


class OutboxFolderSender:
    """Writes each message to ``<folder>/<action id>.eml``; a resend overwrites it."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"OutboxFolderSender({str(self.path)!r})"

    def file_for(self, action_id: str) -> Path:
        return self.path / f"{safe_token(action_id)}.eml"

    def send(self, message: EmailMessage, hand_over: Callable[[], bool] = lambda: True) -> None:
        action_id = message[ACTION_ID_HEADER]
        if not action_id:
            raise ValueError(f"message has no {ACTION_ID_HEADER} header")
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.file_for(str(action_id))
        # Write aside, then rename: a reader never sees half a message.
        with tempfile.NamedTemporaryFile(dir=self.path, suffix=".tmp", delete=False) as handle:
            handle.write(message.as_bytes())
        if not hand_over():
            os.unlink(handle.name)
            raise HandOverRefused("another attempt took this action over; the message was not completed")
        os.replace(handle.name, target)


class EmailChannel:
    """E-mail, guarded by the outbox so that a redelivered action is not sent twice."""

    def __init__(self, parts: SinkParts):
        self._outbox = parts.outbox
        self._sender = parts.email_sender
        self._clock = parts.clock
        self._mail_from = parts.mail_from
        self._environment = parts.environment

    def give_up(self, action: DunningActionDue, reason: str) -> None:
        self._outbox.mark_failed(action.action_id, reason)

    def deliver(self, action: DunningActionDue) -> Outcome:
        """Sent once per action id; a redelivery of what was sent counts apart as "duplicate"."""
        if not action.email:
            return Outcome(FAILED, "no e-mail address", FAILED)
        claimed = self._outbox.claim(action.action_id, "email")
        if claimed.outcome is Claim.ALREADY_SENT:
            return Outcome(SENT, "already sent", "duplicate")
        if claimed.outcome is Claim.BUSY:
            raise SendDeferred(f"action {action.action_id} is being sent by another attempt")
        try:
            rendered = render_message(action, self._environment)
            message = build_email(action, rendered, self._mail_from, sent_at=self._clock())
        except (UnknownTemplateError, TemplateError, ValueError) as exc:
            return self._failed(action, claimed.attempt, f"cannot build message: {exc}")
        if claimed.outcome is Claim.RESEND_UNCERTAIN:
            # An earlier attempt handed this message over and died before it heard back.
            UNCERTAIN_RESENDS.labels(channel="email").inc()
            log.warning("sent again: an earlier attempt may have delivered it", action_id=action.action_id,
                        debtor_id=action.debtor_id, message_id=str(message["Message-ID"]))
        try:
            self._sender.send(message, lambda: self._outbox.hand_over(action.action_id, claimed.attempt))
        except HandOverRefused as exc:
            raise SendDeferred(str(exc)) from exc
        except (smtplib.SMTPException, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if is_transient_smtp_error(exc):
                self._outbox.mark_deferred(action.action_id, claimed.attempt, error)
                MESSAGES.labels(channel="email", status="deferred").inc()
                raise SendDeferred(error) from exc
            return self._failed(action, claimed.attempt, error)
        if not self._outbox.mark_sent(action.action_id, claimed.attempt, str(message["Message-ID"])):
            log.warning("sent, but a later attempt had taken the action over", action_id=action.action_id)
        return Outcome(SENT, None, SENT)

    def _failed(self, action: DunningActionDue, attempt: int, error: str) -> Outcome:
        self._outbox.mark_failed(action.action_id, error, attempt)
        return Outcome(FAILED, error, FAILED)
