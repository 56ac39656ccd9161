"""Turn a dunning action into a message: subject, plain-text body and optional HTML body.

Templates live in ``sinks/templates/<language>/``:

- ``<template>.txt.j2`` (required). Its first line is the subject, the rest the body::

      Subject: Betalingsherinnering

      Beste ...,

- ``<template>.html.j2`` (optional): the HTML body, autoescaped; the subject still
  comes from the text template.
- files starting with ``_`` are partials (greeting, item list, closing) that the
  templates include; an action cannot select them.

Every field of the action is in the context (``debtor_name``, ``debtor_kind``,
``channel``, ``tone``, ``items``, ``total_minor``, ``collection_costs_minor``, ...),
plus two filters that use the action's currency and language: ``money`` (minor
units to "€ 1.656,25" / "€1,656.25") and ``longdate`` ("3 maart 2025" / "3 March 2025").
The environment is sandboxed (template text is configuration, not code) and uses
StrictUndefined, so a misspelt variable fails the render instead of leaving a gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, Optional

from jinja2 import (
    BaseLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from sinks.formatting import LOCALES, format_long_date, format_money
from sinks.registry import TEMPLATE_DIR, TEMPLATE_NAME
from streams.core.events import DunningActionDue
from streams.core.policy import TONES

SUBJECT_PREFIX = "Subject:"

# Conditional paragraphs leave runs of blank lines behind; one blank line is enough.
_EXTRA_BLANK_LINES = re.compile(r"\n{3,}")


class UnknownTemplateError(LookupError):
    """The action asks for a template, language or tone that does not exist."""


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str
    body_text: str
    body_html: Optional[str] = None


@pass_context
def _money_filter(context: Context, amount_minor: int) -> str:
    return format_money(amount_minor, context["currency"], context["language"])


@pass_context
def _longdate_filter(context: Context, value: Any) -> str:
    return format_long_date(value, context["language"])


def build_environment(loader: Optional[BaseLoader] = None) -> SandboxedEnvironment:
    """The Jinja2 environment for messages; ``loader`` defaults to the packaged templates."""
    environment = SandboxedEnvironment(
        loader=loader or FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["money"] = _money_filter
    environment.filters["longdate"] = _longdate_filter
    return environment


@lru_cache(maxsize=1)
def default_environment() -> SandboxedEnvironment:
    return build_environment()


def render_message(
    action: DunningActionDue, environment: Optional[SandboxedEnvironment] = None
) -> RenderedMessage:
    """Render the action's template in its language and tone."""
    environment = environment or default_environment()
    text_template = _text_template(environment, action)
    context = {f.name: getattr(action, f.name) for f in fields(action)}

    subject, body_text = _split_subject(text_template.render(context), text_template.name)
    html_template = _optional_template(environment, f"{action.language}/{action.template}.html.j2")
    body_html = html_template.render(context) if html_template is not None else None
    return RenderedMessage(subject=subject, body_text=body_text, body_html=body_html)


def _text_template(environment: SandboxedEnvironment, action: DunningActionDue) -> Template:
    if action.language not in LOCALES:
        raise UnknownTemplateError(
            f"unsupported language {action.language!r} "
            f"(supported: {', '.join(sorted(LOCALES))})"
        )
    if action.tone not in TONES:
        raise UnknownTemplateError(
            f"unknown tone {action.tone!r} (known: {', '.join(TONES)})"
        )
    if not TEMPLATE_NAME.fullmatch(action.template):
        raise UnknownTemplateError(f"invalid template name {action.template!r}")
    template = _optional_template(environment, f"{action.language}/{action.template}.txt.j2")
    if template is None:
        raise UnknownTemplateError(
            f"unknown template {action.template!r} for language {action.language!r}"
        )
    return template


def _optional_template(environment: SandboxedEnvironment, name: str) -> Optional[Template]:
    try:
        return environment.get_template(name)
    except TemplateNotFound:
        return None


def _split_subject(rendered: str, template_name: Optional[str]) -> tuple[str, str]:
    first_line, _, rest = rendered.partition("\n")
    if not first_line.startswith(SUBJECT_PREFIX):
        raise TemplateError(
            f"template {template_name!r} must start with a '{SUBJECT_PREFIX} ...' line"
        )
    subject = first_line.removeprefix(SUBJECT_PREFIX).strip()
    body = _EXTRA_BLANK_LINES.sub("\n\n", rest.strip("\n")) + "\n"
    return subject, body
