"""The channel side: rendering, the outbox, e-mail senders and the channel sink.

E-mail goes to a real SMTP server (aiosmtpd on loopback); the outbox lives in a
SQLite file per test.
"""

from __future__ import annotations

import email
import email.policy
from datetime import date, datetime, timedelta, timezone

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from jinja2 import DictLoader, UndefinedError
from prometheus_client import REGISTRY
from sqlalchemy import create_engine

from sinks.channels import ChannelSink, SendDeferred
from sinks.email import (
    OutboxFolderSender,
    SmtpSender,
    message_id_for,
    safe_token,
)
from sinks.formatting import format_long_date, format_money
from sinks.outbox import Claim, Outbox, outbox_table
from sinks.render import UnknownTemplateError, build_environment, render_message
from streams.core.events import ActionItem, DunningActionDue
from tests.support import free_port, start_smtp

TEMPLATES = (
    "pre_due_reminder",
    "first_reminder",
    "second_reminder",
    "final_notice",
    "collection_handover",
    "sms_reminder",
)
NOW = datetime(2025, 4, 2, 8, 30, tzinfo=timezone.utc)
MAIL_FROM = "debiteuren@example.com"


def make_action(**changes) -> DunningActionDue:
    items = (
        ActionItem("2025-0042", date(2025, 3, 3), 165625, 30, "5000056789012345"),
        ActionItem("2025-0050", date(2025, 3, 20), 10000, 13),
    )
    values = dict(
        action_id="act-D1-b2c-3-2025-04-02",
        debtor_id="D1",
        business_date=date(2025, 4, 2),
        workflow="b2c",
        step=3,
        step_name="first reminder",
        channel="email",
        template="first_reminder",
        tone="neutral",
        language="nl",
        debtor_name="Jan Jansen",
        debtor_kind="B2C",
        currency="EUR",
        total_minor=175625,
        items=items,
        email="jan@example.nl",
        phone="+31612345678",
        collection_costs_minor=0,
    )
    values.update(changes)
    return DunningActionDue(**values)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def smtp_server():
    controller, handler = start_smtp(free_port())
    yield controller, handler
    controller.stop()


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'read-models.db'}")
    outbox_table.metadata.create_all(engine)
    yield engine
    engine.dispose()


def make_sink(engine, sender) -> ChannelSink:
    return ChannelSink(engine, sender, clock=lambda: NOW, mail_from=MAIL_FROM)


def metric(channel: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "dunning_sink_messages_total", {"channel": channel, "status": status}
    )
    return value or 0.0


# --------------------------------------------------------------------------- formatting


def test_money_is_formatted_per_language():
    assert format_money(165625, "EUR", "nl") == "€ 1.656,25"
    assert format_money(165625, "EUR", "en") == "€1,656.25"
    assert format_money(4000, "EUR", "nl") == "€ 40,00"
    assert format_money(123456789, "EUR", "en") == "€1,234,567.89"


def test_dates_are_written_out_per_language():
    assert format_long_date(date(2025, 3, 3), "nl") == "3 maart 2025"
    assert format_long_date(date(2025, 3, 3), "en") == "3 March 2025"


# --------------------------------------------------------------------------- rendering

EXPECTED_TEXT = {
    "nl": {
        "amounts": ("€ 1.656,25", "€ 100,00", "€ 1.756,25"),
        "dates": ("3 maart 2025", "20 maart 2025"),
    },
    "en": {
        "amounts": ("€1,656.25", "€100.00", "€1,756.25"),
        "dates": ("3 March 2025", "20 March 2025"),
    },
}


@pytest.mark.parametrize("language", ["nl", "en"])
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_renders_items_amounts_and_dates(template, language):
    message = render_message(make_action(template=template, language=language, tone="friendly"))

    assert message.subject and "\n" not in message.subject
    assert "Jan Jansen" in message.body_text
    for invoice_id in ("2025-0042", "2025-0050"):
        assert invoice_id in message.body_text
    expected = EXPECTED_TEXT[language]
    total = expected["amounts"][-1]
    assert total in message.body_text
    assert expected["dates"][0] in message.body_text  # the oldest due date
    if template != "sms_reminder":  # the SMS names the total only, to stay short
        for text in expected["amounts"] + expected["dates"]:
            assert text in message.body_text
        assert "5000056789012345" in message.body_text
    assert "{{" not in message.body_text and "{%" not in message.body_text
    assert message.body_html is None


@pytest.mark.parametrize(
    "language, term_days, costs, term, start",
    [
        ("nl", 15, "€ 40,00", "termijn van 15 dagen", "dag na ontvangst van dit bericht"),
        ("en", 21, "€40.00", "final term of 21 days", "day after you receive this message"),
    ],
)
def test_final_notice_names_costs_and_the_term_the_step_gives(language, term_days, costs, term, start):
    action = make_action(template="final_notice", language=language, collection_costs_minor=4000, term_days=term_days)

    body = render_message(action).body_text

    assert costs in body
    assert term in body
    assert start in body


def test_final_notice_without_a_term_asks_for_payment_without_delay():
    body = render_message(make_action(template="final_notice", tone="neutral")).body_text

    assert "termijn" not in body
    assert "per omgaande te betalen" in body and "zo snel mogelijk contact" in body


def test_final_notice_by_letter_speaks_of_the_letter():
    action = make_action(template="final_notice", channel="letter", collection_costs_minor=4000, term_days=15)

    body = render_message(action).body_text

    assert "dag na ontvangst van deze brief" in body
    assert "dit bericht" not in body


@pytest.mark.parametrize("language, includes, part", [
    ("nl", "Het totaalbedrag bevat € 40,00 aan buitengerechtelijke incassokosten", "(waarvan incassokosten € 40,00)"),
    ("en", "The total amount includes €40.00 of extrajudicial collection costs", "(of which collection costs €40.00)"),
])
def test_costs_booked_are_named_as_part_of_the_total_not_threatened(language, includes, part):
    items = (ActionItem("2025-0042", date(2025, 3, 3), 169625, 30, "5000056789012345", 165625, 4000),)
    action = make_action(template="final_notice", language=language, debtor_kind="B2B", items=items,
                         total_minor=169625, collection_costs_minor=4000, term_days=15)

    body = render_message(action).body_text

    assert includes in body
    assert part in body
    assert "zijn wij genoodzaakt" not in body and "we will charge" not in body


def test_final_notice_without_costs_names_none():
    body = render_message(make_action(template="final_notice")).body_text

    assert "incassokosten" not in body


def test_tone_changes_the_wording():
    friendly = render_message(make_action(tone="friendly")).body_text
    firm = render_message(make_action(tone="firm")).body_text
    formal = render_message(make_action(tone="formal", language="en")).body_text

    assert friendly.startswith("Beste Jan Jansen,")
    assert "zo spoedig mogelijk" in friendly
    assert firm.startswith("Geachte Jan Jansen,")
    assert "per omgaande" in firm
    assert formal.startswith("Dear Sir or Madam,")
    assert "Yours faithfully," in formal


def test_unknown_template_raises_with_its_name():
    with pytest.raises(UnknownTemplateError, match="third_reminder"):
        render_message(make_action(template="third_reminder"))


def test_partials_cannot_be_selected_as_templates():
    with pytest.raises(UnknownTemplateError, match="_items"):
        render_message(make_action(template="_items"))


def test_unknown_language_raises_with_its_name():
    with pytest.raises(UnknownTemplateError, match="'de'"):
        render_message(make_action(language="de"))


def test_unknown_tone_raises_with_its_name():
    with pytest.raises(UnknownTemplateError, match="stern"):
        render_message(make_action(tone="stern"))


def test_a_misspelt_variable_fails_the_render():
    environment = build_environment(
        DictLoader({"nl/first_reminder.txt.j2": "Subject: x\n\n{{ debtor_nmae }}\n"})
    )
    with pytest.raises(UndefinedError, match="debtor_nmae"):
        render_message(make_action(), environment)


def test_html_body_is_autoescaped_and_text_body_is_not():
    environment = build_environment(
        DictLoader(
            {
                "nl/first_reminder.txt.j2": "Subject: Herinnering\n\n{{ debtor_name }}\n",
                "nl/first_reminder.html.j2": "<p>{{ debtor_name }}: {{ total_minor | money }}</p>",
            }
        )
    )
    message = render_message(make_action(debtor_name="Jansen & <Zn>"), environment)

    assert message.body_text == "Jansen & <Zn>\n"
    assert message.body_html == "<p>Jansen &amp; &lt;Zn&gt;: € 1.756,25</p>"


# --------------------------------------------------------------------------- outbox


class Clock:
    def __init__(self):
        self.now = datetime(2025, 4, 1, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_outbox_claims_until_sent(engine):
    clock = Clock()
    outbox = Outbox(engine, clock, lease=timedelta(seconds=60))

    first = outbox.claim("a1", "email")
    assert (first.outcome, first.attempt) == (Claim.SEND, 1)
    assert outbox.claim("a1", "email").outcome is Claim.BUSY  # "sending", within the lease: another sender is at it
    clock.advance(61)
    retried = outbox.claim("a1", "email")  # died before handing the message over: sent again without doubt
    assert (retried.outcome, retried.attempt) == (Claim.SEND, 2)
    outbox.mark_deferred("a1", 2, "timeout")
    third = outbox.claim("a1", "email")
    assert (third.outcome, third.attempt) == (Claim.SEND, 3)
    assert outbox.mark_sent("a1", 3, "<a1@dunning>")
    assert outbox.claim("a1", "email").outcome is Claim.ALREADY_SENT

    entry = outbox.get("a1")
    assert (entry.status, entry.attempts, entry.message_id, entry.last_error) == (
        "sent",
        3,
        "<a1@dunning>",
        None,
    )
    assert entry.updated_at.tzinfo is not None


def test_an_attempt_that_died_after_handing_over_is_sent_again_as_uncertain(engine):
    clock = Clock()
    outbox = Outbox(engine, clock, lease=timedelta(seconds=60))
    first = outbox.claim("a1", "email")
    assert outbox.hand_over("a1", first.attempt)
    clock.advance(30)
    assert outbox.claim("a1", "email").outcome is Claim.BUSY  # may still be waiting for the server's answer
    clock.advance(31)
    again = outbox.claim("a1", "email")
    assert (again.outcome, again.attempt) == (Claim.RESEND_UNCERTAIN, 2)


def test_an_attempt_whose_claim_was_taken_over_cannot_hand_over(engine):
    clock = Clock()
    outbox = Outbox(engine, clock, lease=timedelta(seconds=60))
    slow = outbox.claim("a1", "email")
    clock.advance(61)
    fast = outbox.claim("a1", "email")
    assert not outbox.hand_over("a1", slow.attempt)
    assert outbox.hand_over("a1", fast.attempt)
    assert outbox.mark_sent("a1", fast.attempt, "<a1@dunning>")
    assert not outbox.mark_sent("a1", slow.attempt, "<a1@dunning>")
    assert outbox.get("a1").status == "sent"


def test_outbox_refuses_to_finish_an_unclaimed_action(engine):
    with pytest.raises(LookupError, match="nope"):
        Outbox(engine).mark_sent("nope", 1, "<nope@dunning>")


def test_outbox_works_on_the_migrated_read_model_schema(tmp_path):
    from projections.db import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    migrate(url)
    engine = make_engine(url)
    outbox = Outbox(engine)

    claimed = outbox.claim("a1", "email")
    assert claimed.outcome is Claim.SEND
    outbox.mark_sent("a1", claimed.attempt, "<a1@dunning>")
    assert outbox.claim("a1", "email").outcome is Claim.ALREADY_SENT
    assert outbox.get("a1").status == "sent"
    engine.dispose()


# --------------------------------------------------------------------------- e-mail over SMTP


def test_email_action_sends_exactly_one_mail(engine, smtp_server):
    controller, handler = smtp_server
    sink = make_sink(engine, SmtpSender(f"smtp://127.0.0.1:{controller.port}"))
    action = make_action()
    sent_before = metric("email", "sent")

    result = sink.handle(action)

    assert (result.status, result.detail) == ("sent", None)
    assert result.event_id == f"delivery:{action.action_id}:sent"
    assert (result.action_id, result.debtor_id, result.channel) == (action.action_id, "D1", "email")
    assert result.attempted_at == NOW
    assert len(handler.messages) == 1
    recipients, mail = handler.messages[0]
    assert recipients == ["jan@example.nl"]
    assert mail["To"] == "jan@example.nl"
    assert mail["From"] == MAIL_FROM
    assert mail["Subject"] == "Betalingsherinnering"
    assert mail["Message-ID"] == f"<{action.action_id}@dunning>"
    assert mail["X-Dunning-Action-Id"] == action.action_id
    body = mail.get_content()
    assert "2025-0042" in body
    assert "€ 1.656,25" in body
    entry = sink.outbox.get(action.action_id)
    assert (entry.status, entry.message_id) == ("sent", f"<{action.action_id}@dunning>")
    assert metric("email", "sent") == sent_before + 1


def test_redelivered_action_is_sent_once(engine, smtp_server):
    controller, handler = smtp_server
    sink = make_sink(engine, SmtpSender(f"smtp://127.0.0.1:{controller.port}"))
    action = make_action()
    duplicates_before = metric("email", "duplicate")

    first = sink.handle(action)
    second = sink.handle(action)

    assert first.status == "sent"
    assert (second.status, second.detail) == ("sent", "already sent")
    assert second.event_id == first.event_id
    assert len(handler.messages) == 1
    assert sink.outbox.get(action.action_id).attempts == 1
    assert metric("email", "duplicate") == duplicates_before + 1


def test_smtp_down_is_deferred_and_a_later_retry_sends_once(engine):
    port = free_port()  # nothing listens here yet
    sink = make_sink(engine, SmtpSender(f"smtp://127.0.0.1:{port}", timeout=5))
    action = make_action()

    with pytest.raises(SendDeferred, match="(?i)refused"):
        sink.handle(action)

    entry = sink.outbox.get(action.action_id)
    assert (entry.status, entry.attempts) == ("deferred", 1)
    assert "refused" in entry.last_error.lower()

    controller, handler = start_smtp(port)
    try:
        retried = sink.handle(action)
        again = sink.handle(action)
    finally:
        controller.stop()

    assert retried.status == "sent"
    assert again.detail == "already sent"
    assert len(handler.messages) == 1
    entry = sink.outbox.get(action.action_id)
    assert (entry.status, entry.attempts, entry.last_error) == ("sent", 2, None)


def test_a_message_with_a_leading_dot_line_arrives_whole(engine, smtp_server):
    controller, handler = smtp_server
    environment = build_environment(DictLoader({
        "nl/first_reminder.txt.j2": "Subject: Herinnering\n\nregel een\n.\n..twee punten\nlaatste regel\n",
    }))
    sink = ChannelSink(engine, SmtpSender(f"smtp://127.0.0.1:{controller.port}"), clock=lambda: NOW,
                       mail_from=MAIL_FROM, environment=environment)
    assert sink.handle(make_action()).status == "sent"
    body = handler.messages[0][1].get_content()
    assert body.splitlines()[-3:] == [".", "..twee punten", "laatste regel"]


def _authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"dunning",
        b"s3cr@t",
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server_with_login():
    controller, handler = start_smtp(
        free_port(), authenticator=_authenticate, auth_require_tls=False
    )
    yield controller, handler
    controller.stop()


def test_smtp_url_credentials_are_used_to_log_in(engine, smtp_server_with_login):
    controller, handler = smtp_server_with_login
    good = make_sink(engine, SmtpSender(f"smtp://dunning:s3cr%40t@127.0.0.1:{controller.port}"))
    bad = make_sink(engine, SmtpSender(f"smtp://dunning:wrong@127.0.0.1:{controller.port}"))

    refused = bad.handle(make_action(action_id="act-bad"))
    accepted = good.handle(make_action(action_id="act-good"))

    assert refused.status == "failed"
    assert "SMTPAuthenticationError" in refused.detail
    assert accepted.status == "sent"
    assert [mail["X-Dunning-Action-Id"] for _, mail in handler.messages] == ["act-good"]


def test_debtor_without_email_address_fails_without_sending(engine, smtp_server):
    controller, handler = smtp_server
    sink = make_sink(engine, SmtpSender(f"smtp://127.0.0.1:{controller.port}"))

    result = sink.handle(make_action(email=None))

    assert (result.status, result.detail) == ("failed", "no e-mail address")
    assert handler.messages == []


def test_unknown_template_fails_the_delivery_and_is_recorded(engine, smtp_server):
    controller, handler = smtp_server
    sink = make_sink(engine, SmtpSender(f"smtp://127.0.0.1:{controller.port}"))

    result = sink.handle(make_action(template="third_reminder"))

    assert result.status == "failed"
    assert "third_reminder" in result.detail
    assert sink.outbox.get("act-D1-b2c-3-2025-04-02").status == "failed"
    assert handler.messages == []


@pytest.mark.parametrize("channel", ["sms", "letter", "call", "collection"])
def test_task_channels_are_recorded_without_mail(engine, smtp_server, channel):
    controller, handler = smtp_server
    sink = make_sink(engine, SmtpSender(f"smtp://127.0.0.1:{controller.port}"))
    recorded_before = metric(channel, "recorded")

    result = sink.handle(make_action(channel=channel, template="sms_reminder"))

    assert (result.status, result.detail) == ("recorded", f"{channel} task recorded")
    assert result.event_id == "delivery:act-D1-b2c-3-2025-04-02:recorded"
    assert handler.messages == []
    assert sink.outbox.get("act-D1-b2c-3-2025-04-02") is None
    assert metric(channel, "recorded") == recorded_before + 1


def test_unknown_channel_is_skipped(engine):
    sink = make_sink(engine, OutboxFolderSender("unused"))

    result = sink.handle(make_action(channel="pigeon"))

    assert (result.status, result.detail) == ("skipped", "unknown channel 'pigeon'")


# --------------------------------------------------------------------------- outbox folder


def test_outbox_folder_sender_writes_one_eml_per_action(engine, tmp_path):
    folder = tmp_path / "outbox"
    sink = make_sink(engine, OutboxFolderSender(folder))

    sink.handle(make_action(action_id="act-1"))
    sink.handle(make_action(action_id="act-2", language="en"))
    sink.handle(make_action(action_id="act-1"))  # redelivery

    assert sorted(path.name for path in folder.iterdir()) == ["act-1.eml", "act-2.eml"]
    mail = email.message_from_bytes(
        (folder / "act-2.eml").read_bytes(), policy=email.policy.default
    )
    assert mail["Message-ID"] == "<act-2@dunning>"
    assert mail["Subject"] == "Payment reminder"
    assert "€1,656.25" in mail.get_content()


# --------------------------------------------------------------------------- configuration


def test_unsafe_action_ids_give_safe_distinct_message_ids():
    unsafe = "act:D1/b2c 3<2025>"

    token = safe_token(unsafe)

    assert token.startswith("act_D1_b2c_3_2025_-")
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert safe_token(unsafe) == token
    assert safe_token("act_D1/b2c 3<2025>") != token
    assert message_id_for(unsafe) == f"<{token}@dunning>"
    assert message_id_for("plain-id.1") == "<plain-id.1@dunning>"


@pytest.mark.parametrize(
    "url, scheme, port, username",
    [
        ("smtp://mail.example.com", "smtp", 25, None),
        ("smtps://u:p@mail.example.com", "smtps", 465, "u"),
        ("smtp+starttls://u%40x:p@mail.example.com", "smtp+starttls", 587, "u@x"),
        ("smtp://mail.example.com:2525", "smtp", 2525, None),
    ],
)
def test_smtp_url_is_parsed(url, scheme, port, username):
    sender = SmtpSender(url)

    assert (sender.scheme, sender.host, sender.port, sender.username) == (
        scheme,
        "mail.example.com",
        port,
        username,
    )
    assert ":p@" not in repr(sender)


def test_smtp_url_with_another_scheme_is_refused():
    with pytest.raises(ValueError, match="'http'"):
        SmtpSender("http://mail.example.com")


@pytest.mark.parametrize("url", [
    "smtp://dunning:se/cr3t-pw@mail.example.com:587",  # "/" ends the host part: the rest looks like a path
    "smtp://dunning:se#cr3t-pw@mail.example.com:587",  # "#" starts a fragment
    "smtp://dunning:se?cr3t-pw@mail.example.com:587",  # "?" starts a query
])
def test_a_password_that_breaks_the_url_is_refused_without_showing_it(url):
    with pytest.raises(ValueError) as refused:
        SmtpSender(url)
    message = str(refused.value)
    assert "percent-encode" in message
    for fragment in ("cr3t", "-pw", "dunning", "example"):
        assert fragment not in message, message


