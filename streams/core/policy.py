"""The credit policy: which debtors follow which workflow, and what each step does.

A policy is read from YAML (see ``harness/samples/policy.yaml``). Segments are tried in
order; the first whose ``match`` fits the debtor picks the workflow. Intercompany
debtors are never dunned.

Every key and value is checked, so a typo is refused rather than silently changing what
debtors receive. The channels and templates the platform ships live outside the core:
the caller passes them in (``check_policy``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Collection, Mapping

import yaml

from streams.core.collection_costs import STATUTORY, CostsTable

TONES = ("friendly", "neutral", "firm", "formal")
MATCHABLE = ("kind", "segment", "language", "branch", "salesperson", "currency")
KINDS = ("B2B", "B2C")  # exactly as the events carry them: a match is case-sensitive

# The keys each level of the file may hold.
TOP_KEYS = ("segments", "workflows", "limits", "collection_costs")
SEGMENT_KEYS = ("name", "match", "workflow")
WORKFLOW_KEYS = ("steps", "min_amount_minor", "b2b_costs")
B2B_COSTS = ("minimum", "statutory", "none")  # or a whole amount in minor units: the creditor's terms
COSTS_KEYS = ("brackets", "minimum_minor", "maximum_minor", "vat_percent")
BRACKET_KEYS = ("up_to_minor", "percent")
STEP_KEYS = ("name", "offset_days", "channel", "template", "tone", "collection_costs", "term_days")
LIMIT_KEYS = ("warning_share",)

_CURRENCY = re.compile(r"[A-Z]{3}")  # ISO 4217, as the events carry it


class PolicyError(ValueError):
    """The policy file is wrong; the message names the place."""


# The channel that hands a debtor over to the collection agency: never a consumer before the
# 14-day letter's term has passed (BW 6:96 lid 6).
HANDOVER_CHANNEL = "collection"

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
    # Claim the collection costs: a consumer's 14-day letter names them and they are booked
    # once its term has passed unpaid; for a business they are booked when the step fires.
    collection_costs: bool = False
    # Days the message gives the debtor to pay, from the day after receipt; the next
    # step of the invoice waits until they have run out.
    term_days: int = 0


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    steps: tuple[Step, ...]
    min_amount_minor: int = 0  # below this, an action waits rather than fires
    b2b_costs: str | int = "minimum"  # what a business pays per invoice: B2B_COSTS, or an amount
    offsets: tuple[int, ...] = field(init=False, compare=False, repr=False)  # of the steps, looked up per invoice
    # The dunning steps (Item.dunning_step) an invoice is at right after a step that claims the
    # collection costs, looked up per invoice on a consumer's day tick.
    after_costs_step: frozenset[int] = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "offsets", tuple(step.offset_days for step in self.steps))
        object.__setattr__(self, "after_costs_step",
                           frozenset(i + 1 for i, step in enumerate(self.steps) if step.collection_costs))

    def costs_letter_before(self, position: int) -> bool:
        """A step before ``position`` claims the costs: for a consumer, the 14-day letter, whose
        term the steps after it wait for."""
        return any(after <= position for after in self.after_costs_step)


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
    costs_table: CostsTable = STATUTORY
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


@dataclass(frozen=True, slots=True)
class PolicyCheck:
    """A policy that passed, and what in it is allowed but probably not meant."""

    policy: Policy
    warnings: tuple[str, ...] = ()


def check_policy(
    text: str,
    source: str = "policy",
    *,
    channels: Collection[str],
    templates: Mapping[str, Collection[str]],
) -> PolicyCheck:
    """Read a policy as the product does: every channel and template checked, warnings kept.

    ``channels``: the channel names the sinks deliver. ``templates``: language -> the
    template names shipped in it; a step's template must exist in every language.
    """
    policy, warnings = _read(_load(text, source), source, channels, templates)
    return PolicyCheck(policy, tuple(warnings))


def policy_from_yaml(
    text: str,
    source: str = "policy",
    *,
    channels: Collection[str] | None = None,
    templates: Mapping[str, Collection[str]] | None = None,
) -> Policy:
    """The policy in ``text``; warnings dropped. None skips the channel or template check."""
    return policy_from_dict(_load(text, source), source, channels=channels, templates=templates)


def policy_from_dict(
    data: Mapping[str, Any],
    source: str = "policy",
    *,
    channels: Collection[str] | None = None,
    templates: Mapping[str, Collection[str]] | None = None,
) -> Policy:
    return _read(data, source, channels, templates)[0]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice: PyYAML would silently keep the last one."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` may be overridden key by key; that is YAML, not a typo
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark, f"found key {key!r} twice", key_node.start_mark)
                seen.add(key)
            except TypeError:
                pass  # an unhashable key: the base class refuses it
        return super().construct_mapping(node, deep)


def _load(text: str, source: str) -> Any:
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping at the top level")
    return data


def _read(
    data: Mapping[str, Any],
    source: str,
    channels: Collection[str] | None,
    templates: Mapping[str, Collection[str]] | None,
) -> tuple[Policy, list[str]]:
    if channels is not None:
        channels = tuple(sorted(channels))
    if templates is not None:
        if not templates:
            raise ValueError("templates: no language given, so no template could pass")
        templates = {language: frozenset(names) for language, names in templates.items()}
    _known_keys(data, TOP_KEYS, f"{source}: ")

    workflows: dict[str, Workflow] = {}
    for wf_name, wf in _mapping(data, "workflows", source).items():
        where = f"{source}: workflows.{wf_name}"
        if not isinstance(wf_name, str):
            raise PolicyError(f"{where}: a workflow name must be text")
        if not isinstance(wf, dict):
            raise PolicyError(f"{where}: expected a mapping with steps")
        _known_keys(wf, WORKFLOW_KEYS, f"{where}.")
        raw_steps = wf.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise PolicyError(f"{where}.steps: expected a non-empty list of steps")
        steps = tuple(_step(raw, f"{where}.steps[{i}]", channels, templates) for i, raw in enumerate(raw_steps))
        offsets = [s.offset_days for s in steps]
        if offsets != sorted(offsets) or len(set(offsets)) != len(offsets):
            raise PolicyError(f"{where}.steps: offset_days must strictly increase, got {offsets}")
        min_amount = wf.get("min_amount_minor", 0)
        if not _is_whole(min_amount) or min_amount < 0:
            raise PolicyError(f"{where}.min_amount_minor: expected a whole number >= 0")
        b2b_costs = wf.get("b2b_costs", "minimum")
        if not (_is_whole(b2b_costs) and b2b_costs >= 0):
            _one_of(b2b_costs, B2B_COSTS, f"{where}.b2b_costs")
        for i, step in enumerate(steps):
            if step.collection_costs and step.offset_days < 1:
                raise PolicyError(f"{where}.steps[{i}].offset_days: collection costs are due from the day after "
                                  f"the due date at the earliest (offset 1), got {step.offset_days}")
        workflows[wf_name] = Workflow(wf_name, steps, min_amount, b2b_costs)

    languages = tuple(sorted(templates)) if templates is not None else None
    segments = []
    raw_segments = data.get("segments")
    if not isinstance(raw_segments, list) or not raw_segments:
        raise PolicyError(f"{source}: segments: expected a non-empty list")
    for i, raw in enumerate(raw_segments):
        where = f"{source}: segments[{i}]"
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: expected a mapping with name and workflow")
        _known_keys(raw, SEGMENT_KEYS, f"{where}.")
        if "name" not in raw or "workflow" not in raw:
            raise PolicyError(f"{where}: expected name and workflow")
        name = _text(raw["name"], f"{where}.name")
        workflow = _text(raw["workflow"], f"{where}.workflow")
        if workflow not in workflows:
            raise PolicyError(f"{where}.workflow: unknown workflow {workflow!r}{_hint(workflow, workflows)}")
        match = raw.get("match")
        match = {} if match is None else match  # left out (or ~): every debtor
        if not isinstance(match, dict):
            raise PolicyError(f"{where}.match: expected a mapping (leave match out to match every debtor)")
        segments.append(Segment(name, workflow, _match(match, f"{where}.match", languages)))

    limits = data.get("limits")
    limits = {} if limits is None else limits  # left out (or ~): the defaults
    if not isinstance(limits, dict):
        raise PolicyError(f"{source}: limits: expected a mapping")
    _known_keys(limits, LIMIT_KEYS, f"{source}: limits.")
    share = limits.get("warning_share", 0.9)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise PolicyError(f"{source}: limits.warning_share: expected a number in (0, 1]")
    costs = _costs_table(data.get("collection_costs"), f"{source}: collection_costs")
    return (Policy(tuple(segments), workflows, round(share * 10000), costs),
            _warnings(segments, workflows, source))


def _costs_table(raw: Any, where: str) -> CostsTable:
    """The collection costs table; left out, the statutory one (its brackets, minimum and
    maximum each default to the statutory ones)."""
    if raw is None:
        return STATUTORY
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a mapping")
    _known_keys(raw, COSTS_KEYS, f"{where}.")
    brackets = STATUTORY.brackets
    if "brackets" in raw:
        listed = raw["brackets"]
        if not isinstance(listed, list) or not listed:
            raise PolicyError(f"{where}.brackets: expected a non-empty list of {{up_to_minor, percent}}")
        brackets, lower = [], 0
        for i, bracket in enumerate(listed):
            here = f"{where}.brackets[{i}]"
            if not isinstance(bracket, dict):
                raise PolicyError(f"{here}: expected a mapping with up_to_minor and percent")
            _known_keys(bracket, BRACKET_KEYS, f"{here}.")
            last = i == len(listed) - 1
            upper = bracket.get("up_to_minor")
            if last and upper is not None:
                raise PolicyError(f"{here}.up_to_minor: the last bracket has no upper bound: leave it out")
            if not last and not (_is_whole(upper) and upper > lower):
                raise PolicyError(f"{here}.up_to_minor: expected a whole amount above {lower}, got {upper!r}")
            brackets.append((upper, _percent(bracket.get("percent"), f"{here}.percent") / 100))
            lower = upper or lower
        brackets = tuple(brackets)
    bounds = {}
    for key, default in (("minimum_minor", STATUTORY.minimum_minor), ("maximum_minor", STATUTORY.maximum_minor)):
        value = raw.get(key, default)
        if not (_is_whole(value) and value >= 0):
            raise PolicyError(f"{where}.{key}: expected a whole amount >= 0, got {value!r}")
        bounds[key] = value
    if bounds["minimum_minor"] > bounds["maximum_minor"]:
        raise PolicyError(f"{where}.minimum_minor: {bounds['minimum_minor']} is above maximum_minor "
                          f"{bounds['maximum_minor']}")
    vat = _percent(raw.get("vat_percent", 0), f"{where}.vat_percent") / 100
    return CostsTable(brackets, bounds["minimum_minor"], bounds["maximum_minor"], vat)


def _percent(value: Any, where: str) -> Fraction:
    """A percentage from 0 to 100, exact (0.5 is one half, not a binary fraction near it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise PolicyError(f"{where}: expected a percentage from 0 to 100, got {value!r}")
    return Fraction(str(value))


def _mapping(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict) or not value:
        raise PolicyError(f"{source}: {key}: expected a non-empty mapping")
    return value


def _step(
    raw: Any,
    where: str,
    channels: tuple[str, ...] | None,
    templates: Mapping[str, frozenset[str]] | None,
) -> Step:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a mapping")
    _known_keys(raw, STEP_KEYS, f"{where}.")
    for key in ("name", "offset_days", "channel", "template"):
        if key not in raw:
            raise PolicyError(f"{where}.{key}: missing")
    name = _text(raw["name"], f"{where}.name")
    if not _is_whole(raw["offset_days"]):
        raise PolicyError(f"{where}.offset_days: expected a whole number of days")
    channel = _text(raw["channel"], f"{where}.channel")
    if channels is not None:
        _one_of(channel, channels, f"{where}.channel")
    template = _text(raw["template"], f"{where}.template")
    if templates is not None:
        _shipped(template, templates, name, f"{where}.template")
    tone = raw.get("tone", "neutral")
    _one_of(tone, TONES, f"{where}.tone")
    term_days = raw.get("term_days", 0)
    if not _is_whole(term_days) or term_days < 0:
        raise PolicyError(f"{where}.term_days: expected a whole number of days >= 0")
    # bool("no") is True: only a real YAML boolean may switch the statutory costs on or off.
    collection_costs = raw.get("collection_costs", False)
    if not isinstance(collection_costs, bool):
        raise PolicyError(f"{where}.collection_costs: expected true or false, got {collection_costs!r}")
    if collection_costs and term_days < STATUTORY_TERM_DAYS:
        raise PolicyError(
            f"{where}.term_days: a step that names the collection costs must give at least "
            f"{STATUTORY_TERM_DAYS} days to pay (the consumer's 14-day letter), got {term_days}"
        )
    return Step(
        name=name,
        offset_days=raw["offset_days"],
        channel=channel,
        template=template,
        tone=tone,
        collection_costs=collection_costs,
        term_days=term_days,
    )


def _match(
    raw: Mapping[str, Any], where: str, languages: tuple[str, ...] | None
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    _known_keys(raw, MATCHABLE, f"{where}.")
    pairs = []
    for key, value in sorted(raw.items()):
        values = value if isinstance(value, list) else [value]
        for i, item in enumerate(values):
            here = f"{where}.{key}[{i}]" if isinstance(value, list) else f"{where}.{key}"
            _text(item, here)
            if key == "kind":
                _one_of(item, KINDS, here)
            elif key == "currency" and not _CURRENCY.fullmatch(item):
                hint = f" (did you mean {item.upper()}?)" if _CURRENCY.fullmatch(item.upper()) else ""
                raise PolicyError(f"{here}: {item!r} is not a currency code of 3 upper-case letters{hint}")
            elif key == "language" and languages is not None:
                # No debtor of a language without templates could be sent a message.
                _one_of(item, languages, here)
        pairs.append((key, tuple(values)))
    return tuple(pairs)


def _shipped(template: str, templates: Mapping[str, frozenset[str]], step: str, where: str) -> None:
    missing = sorted(language for language, names in templates.items() if template not in names)
    if missing:
        everywhere = sorted(frozenset.intersection(*templates.values()))
        raise PolicyError(
            f"{where}: step {step!r} names template {template!r}, missing in {', '.join(missing)}"
            f"{_hint(template, everywhere)}"
        )


def _warnings(segments: list[Segment], workflows: Mapping[str, Workflow], source: str) -> list[str]:
    warnings = []
    for i, segment in enumerate(segments):
        where = f"{source}: segments[{i}] ({segment.name})"
        if any(not values for _, values in segment.match):
            warnings.append(f"{where}: can match no debtor: a match key lists no value")
            continue
        for j, earlier in enumerate(segments[:i]):
            if _covers(earlier, segment):
                warnings.append(
                    f"{where}: can match no debtor: segments[{j}] ({earlier.name}) before it "
                    "already matches every debtor it would"
                )
                break
    for i, segment in enumerate(segments):
        kinds = dict(segment.match).get("kind", KINDS)
        workflow = workflows[segment.workflow]
        handovers = [j for j, step in enumerate(workflow.steps) if step.channel == HANDOVER_CHANNEL]
        if "B2C" in kinds and handovers and not workflow.costs_letter_before(handovers[0]):
            warnings.append(
                f"{source}: segments[{i}] ({segment.name}): workflow {segment.workflow!r} hands over to collection "
                "with no step claiming the collection costs before it: a consumer is never handed over without "
                "the 14-day letter, so its consumers stop before that step")
    used = {segment.workflow for segment in segments}
    warnings.extend(f"{source}: workflows.{name}: no segment uses this workflow" for name in workflows if name not in used)
    return warnings


def _covers(earlier: Segment, later: Segment) -> bool:
    """Whether every debtor ``later`` fits is fitted by ``earlier`` first: earlier matches on
    no key later leaves free, and accepts at least the values later accepts."""
    later_match = dict(later.match)
    return all(key in later_match and set(later_match[key]) <= set(values) for key, values in earlier.match)


def _known_keys(raw: Mapping[Any, Any], known: tuple[str, ...], prefix: str) -> None:
    for key in raw:
        if key not in known:
            hint = _nearest(str(key), known)
            refusal = f"did you mean {hint}?" if hint else f"known: {', '.join(known)}"
            raise PolicyError(f"{prefix}{key}: unknown key ({refusal})")


def _one_of(value: Any, known: tuple[str, ...], where: str) -> None:
    if value not in known:
        raise PolicyError(f"{where}: {value!r} is not one of {', '.join(known)}{_hint(str(value), known)}")


def _hint(word: str, known: Collection[str]) -> str:
    nearest = _nearest(word, known)
    return f" (did you mean {nearest}?)" if nearest else ""


def _nearest(word: str, known: Collection[str]) -> str | None:
    """The known word closest to ``word``, case ignored (so b2c finds B2C), if any is close."""
    by_lower = {name.lower(): name for name in known}
    close = difflib.get_close_matches(word.lower(), by_lower, n=1)
    return by_lower[close[0]] if close else None


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        # YAML reads yes/no/on/off unquoted as booleans: `language: no` is False.
        quote = " (quote it: YAML reads yes, no, on and off as true and false)" if isinstance(value, bool) else ""
        raise PolicyError(f"{where}: expected non-empty text, got {value!r}{quote}")
    return value


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # YAML's true is an int to Python
