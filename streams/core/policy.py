"""The credit policy: which debtors follow which workflow, and what each step does.

A policy is read from YAML (see ``dunning/samples/policy.yaml``). Segments are tried in
order; the first whose ``match`` fits the debtor picks the workflow. Intercompany
debtors are never dunned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

CHANNELS = ("email", "sms", "letter", "call", "collection")
TONES = ("friendly", "neutral", "firm", "formal")
MATCHABLE = ("kind", "segment", "language", "branch", "salesperson", "currency")


class PolicyError(ValueError):
    """The policy file is wrong; the message names the place."""


# The consumer's 14-day letter must give at least this many days, from the day after
# receipt (BW 6:96 lid 6); a step that names the collection costs is held to it.
STATUTORY_TERM_DAYS = 14


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    offset_days: int  # days after the due date; negative for reminders before it
    channel: str
    template: str
    tone: str = "neutral"
    collection_costs: bool = False  # name the statutory (WIK) collection costs
    # Days the message gives the debtor to pay, from the day after receipt; the next
    # step of the invoice waits until they have run out.
    term_days: int = 0


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    steps: tuple[Step, ...]
    min_amount_minor: int = 0  # below this, an action waits rather than fires
    offsets: tuple[int, ...] = field(init=False, compare=False, repr=False)  # of the steps, looked up per invoice

    def __post_init__(self):
        object.__setattr__(self, "offsets", tuple(step.offset_days for step in self.steps))


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    workflow: str
    match: tuple[tuple[str, tuple[str, ...]], ...]  # attribute -> accepted values

    def fits(self, attributes: Mapping[str, Any]) -> bool:
        return all(attributes.get(key) in values for key, values in self.match)


@dataclass(frozen=True, slots=True)
class Policy:
    segments: tuple[Segment, ...]
    workflows: Mapping[str, Workflow]
    limit_warning_bp: int = 9000  # warn at 90 % utilisation
    # Matched attribute values -> workflow, filled on first use: segment matching would
    # otherwise run on every event. Keyed by the attributes, not the debtor, so it holds
    # one entry per combination in use, however many debtors share it.
    _by_attributes: dict = field(default_factory=dict, compare=False, repr=False)

    def workflow_for_debtor(self, debtor) -> Workflow | None:
        key = debtor.attribute_values
        try:
            return self._by_attributes[key]
        except KeyError:
            workflow = self._by_attributes[key] = self.workflow_for(debtor.attributes())
            return workflow

    def workflow_for(self, attributes: Mapping[str, Any]) -> Workflow | None:
        if attributes.get("intercompany"):
            return None
        for segment in self.segments:
            if segment.fits(attributes):
                return self.workflows[segment.workflow]
        return None


def policy_from_yaml(text: str, source: str = "policy") -> Policy:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping at the top level")
    return policy_from_dict(data, source)


def policy_from_dict(data: Mapping[str, Any], source: str = "policy") -> Policy:
    workflows: dict[str, Workflow] = {}
    for wf_name, wf in _mapping(data, "workflows", source).items():
        where = f"{source}: workflows.{wf_name}"
        raw_steps = wf.get("steps") if isinstance(wf, dict) else None
        if not isinstance(raw_steps, list) or not raw_steps:
            raise PolicyError(f"{where}.steps: expected a non-empty list of steps")
        steps = tuple(_step(raw, f"{where}.steps[{i}]") for i, raw in enumerate(raw_steps))
        offsets = [s.offset_days for s in steps]
        if offsets != sorted(offsets) or len(set(offsets)) != len(offsets):
            raise PolicyError(f"{where}.steps: offset_days must strictly increase, got {offsets}")
        min_amount = wf.get("min_amount_minor", 0)
        if not isinstance(min_amount, int) or min_amount < 0:
            raise PolicyError(f"{where}.min_amount_minor: expected a whole number >= 0")
        workflows[wf_name] = Workflow(wf_name, steps, min_amount)

    segments = []
    raw_segments = data.get("segments")
    if not isinstance(raw_segments, list) or not raw_segments:
        raise PolicyError(f"{source}: segments: expected a non-empty list")
    for i, raw in enumerate(raw_segments):
        where = f"{source}: segments[{i}]"
        if not isinstance(raw, dict) or "name" not in raw or "workflow" not in raw:
            raise PolicyError(f"{where}: expected name and workflow")
        if raw["workflow"] not in workflows:
            raise PolicyError(f"{where}.workflow: unknown workflow {raw['workflow']!r}")
        match = raw.get("match") or {}
        if not isinstance(match, dict):
            raise PolicyError(f"{where}.match: expected a mapping")
        for key in match:
            if key not in MATCHABLE:
                raise PolicyError(f"{where}.match.{key}: can match only on {', '.join(MATCHABLE)}")
        pairs = tuple(
            (key, tuple(value) if isinstance(value, list) else (value,))
            for key, value in sorted(match.items())
        )
        segments.append(Segment(str(raw["name"]), raw["workflow"], pairs))

    limits = data.get("limits") or {}
    if not isinstance(limits, dict):
        raise PolicyError(f"{source}: limits: expected a mapping")
    share = limits.get("warning_share", 0.9)
    if not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise PolicyError(f"{source}: limits.warning_share: expected a number in (0, 1]")
    return Policy(tuple(segments), workflows, round(share * 10000))


def _mapping(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict) or not value:
        raise PolicyError(f"{source}: {key}: expected a non-empty mapping")
    return value


def _step(raw: Any, where: str) -> Step:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a mapping")
    for key in ("name", "offset_days", "channel", "template"):
        if key not in raw:
            raise PolicyError(f"{where}.{key}: missing")
    if not isinstance(raw["offset_days"], int) or isinstance(raw["offset_days"], bool):
        raise PolicyError(f"{where}.offset_days: expected a whole number of days")
    if raw["channel"] not in CHANNELS:
        raise PolicyError(f"{where}.channel: {raw['channel']!r} is not one of {', '.join(CHANNELS)}")
    tone = raw.get("tone", "neutral")
    if tone not in TONES:
        raise PolicyError(f"{where}.tone: {tone!r} is not one of {', '.join(TONES)}")
    term_days = raw.get("term_days", 0)
    if not isinstance(term_days, int) or isinstance(term_days, bool) or term_days < 0:
        raise PolicyError(f"{where}.term_days: expected a whole number of days >= 0")
    collection_costs = bool(raw.get("collection_costs", False))
    if collection_costs and term_days < STATUTORY_TERM_DAYS:
        raise PolicyError(
            f"{where}.term_days: a step that names the collection costs must give at least "
            f"{STATUTORY_TERM_DAYS} days to pay (the consumer's 14-day letter), got {term_days}"
        )
    return Step(
        name=str(raw["name"]),
        offset_days=raw["offset_days"],
        channel=raw["channel"],
        template=str(raw["template"]),
        tone=tone,
        collection_costs=collection_costs,
        term_days=term_days,
    )
