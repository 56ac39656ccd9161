"""The credit policy file: the sample loads and picks the right workflow; every
mistake in a policy is refused with the place it sits."""

import copy
from pathlib import Path

import pytest
import yaml

from streams.core import policy as policy_module
from streams.core.policy import PolicyCheck, PolicyError, check_policy, policy_from_dict, policy_from_yaml
from streams.core.state import Debtor
from tests.scenario import SAMPLE_POLICY, sample_policy

# What the product passes in: the channels the sinks deliver and the templates they ship.
SINK_CHANNELS = ("email", "sms", "letter", "call", "collection")
TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "sinks" / "templates"


def shipped_templates() -> dict[str, set[str]]:
    """Language -> template names, as in sinks/templates (``_`` marks a partial)."""
    shipped = {}
    for language in ("nl", "en"):
        folder = TEMPLATE_DIR / language
        assert folder.is_dir(), f"no templates at {folder}"
        shipped[language] = {
            path.name.removesuffix(".txt.j2") for path in folder.glob("*.txt.j2") if not path.name.startswith("_")
        }
    return shipped


TEMPLATES = shipped_templates()


def checked(text: str) -> PolicyCheck:
    return check_policy(text, "policy.yaml", channels=SINK_CHANNELS, templates=TEMPLATES)


def attributes(kind: str, segment: str = "default", intercompany: bool = False) -> dict:
    return Debtor("Buyer", kind, segment, "nl", "EUR", intercompany=intercompany).attributes()


def test_sample_policy_has_three_segments_and_their_workflows():
    policy = sample_policy()
    assert [s.name for s in policy.segments] == ["consumers", "key-accounts", "business"]
    assert set(policy.workflows) == {"consumer", "key-account", "business"}
    assert policy.limit_warning_bp == 9000
    consumer = policy.workflows["consumer"]
    assert consumer.min_amount_minor == 500
    assert [s.offset_days for s in consumer.steps] == [-3, 3, 10, 17, 40]
    letter = consumer.steps[3]
    assert (letter.channel, letter.tone, letter.collection_costs, letter.term_days) == ("letter", "formal", True, 15)
    assert not any(s.collection_costs for s in policy.workflows["key-account"].steps)


@pytest.mark.parametrize(
    "debtor, workflow",
    [
        (attributes("B2C"), "consumer"),
        (attributes("B2C", "enterprise"), "consumer"),  # first match wins
        (attributes("B2B", "enterprise"), "key-account"),
        (attributes("B2B"), "business"),
        (attributes("B2B", "smb"), "business"),
    ],
)
def test_segments_pick_the_workflow(debtor, workflow):
    assert sample_policy().workflow_for(debtor).name == workflow


def test_intercompany_debtors_follow_no_workflow():
    assert sample_policy().workflow_for(attributes("B2B", intercompany=True)) is None
    assert sample_policy().workflow_for(attributes("B2C", intercompany=True)) is None


def test_a_debtor_no_segment_fits_follows_no_workflow():
    assert sample_policy().workflow_for(attributes("government")) is None


# --------------------------------------------------------------------------- mistakes


@pytest.fixture
def data() -> dict:
    return yaml.safe_load(SAMPLE_POLICY.read_text())


def refused(data: dict, **known) -> str:
    with pytest.raises(PolicyError) as raised:
        policy_from_dict(data, "policy.yaml", **({"channels": SINK_CHANNELS, "templates": TEMPLATES} | known))
    return str(raised.value)


def warnings_of(data: dict) -> tuple[str, ...]:
    return checked(yaml.safe_dump(data, sort_keys=False)).warnings


def test_unknown_workflow_names_the_segment(data):
    data["segments"][1]["workflow"] = "vip"
    message = refused(data)
    assert message.startswith("policy.yaml: segments[1].workflow")
    assert "'vip'" in message


def test_bad_channel_names_the_step(data):
    data["workflows"]["business"]["steps"][2]["channel"] = "pigeon"
    message = refused(data)
    assert message.startswith("policy.yaml: workflows.business.steps[2].channel")
    assert "'pigeon'" in message


@pytest.mark.parametrize("offsets", [[-3, 3, 3, 17, 40], [-3, 10, 3, 17, 40]])
def test_offsets_that_do_not_strictly_increase_name_the_workflow(data, offsets):
    for step, offset in zip(data["workflows"]["consumer"]["steps"], offsets):
        step["offset_days"] = offset
    message = refused(data)
    assert message.startswith("policy.yaml: workflows.consumer.steps")
    assert str(offsets) in message


def test_bad_tone_names_the_step(data):
    data["workflows"]["key-account"]["steps"][1]["tone"] = "rude"
    message = refused(data)
    assert message.startswith("policy.yaml: workflows.key-account.steps[1].tone")
    assert "'rude'" in message


@pytest.mark.parametrize("field", ["name", "offset_days", "channel", "template"])
def test_missing_step_field_is_named(data, field):
    del data["workflows"]["consumer"]["steps"][0][field]
    assert refused(data) == f"policy.yaml: workflows.consumer.steps[0].{field}: missing"


@pytest.mark.parametrize(
    "change, place",
    [
        (lambda d: d["workflows"]["business"]["steps"][0].update(offset_days="3"), "workflows.business.steps[0].offset_days"),
        (lambda d: d["workflows"]["business"].update(steps=[]), "workflows.business.steps"),
        (lambda d: d["workflows"]["business"].update(min_amount_minor=-1), "workflows.business.min_amount_minor"),
        (lambda d: d["segments"][0].update(match={"country": "NL"}), "segments[0].match.country"),
        (lambda d: d["segments"][2].pop("workflow"), "segments[2]"),
        (lambda d: d.update(segments=[]), "segments"),
        (lambda d: d.update(workflows={}), "workflows"),
        (lambda d: d["limits"].update(warning_share=1.5), "limits.warning_share"),
        (lambda d: d.update(limits=0.9), "limits"),
        (lambda d: d["workflows"]["business"]["steps"][1].update(term_days=-1), "workflows.business.steps[1].term_days"),
        (lambda d: d["workflows"]["business"]["steps"][1].update(term_days="15"), "workflows.business.steps[1].term_days"),
    ],
)
def test_other_mistakes_name_their_place(data, change, place):
    data = copy.deepcopy(data)
    change(data)
    assert refused(data).startswith(f"policy.yaml: {place}")


def test_text_that_is_not_yaml_or_not_a_mapping_is_refused():
    with pytest.raises(PolicyError, match="not valid YAML"):
        policy_from_yaml("segments: [unclosed", "p.yaml")
    with pytest.raises(PolicyError, match="mapping at the top level"):
        policy_from_yaml("- just a list", "p.yaml")


def test_a_step_that_names_collection_costs_must_give_the_statutory_term(data):
    data = copy.deepcopy(data)
    data["workflows"]["consumer"]["steps"][3]["term_days"] = 10
    assert refused(data) == (
        "policy.yaml: workflows.consumer.steps[3].term_days: a step that names the collection costs must give "
        "at least 14 days to pay (the consumer's 14-day letter), got 10"
    )
    data["workflows"]["consumer"]["steps"][3]["term_days"] = 14
    assert policy_from_dict(data).workflows["consumer"].steps[3].term_days == 14


# --------------------------------------------------------------------------- typos


def test_the_sample_policy_passes_clean():
    check = check_policy(SAMPLE_POLICY.read_text(), str(SAMPLE_POLICY), channels=SINK_CHANNELS, templates=TEMPLATES)
    assert check.warnings == ()
    assert check.policy == sample_policy()


@pytest.mark.parametrize(
    "right, typo, message",
    [
        (
            "collection_costs: true, term_days: 15}",
            "collection_cost: true, term_days: 15}",
            "policy.yaml: workflows.consumer.steps[3].collection_cost: unknown key (did you mean collection_costs?)",
        ),
        (
            "template: first_reminder",
            "template: frist_reminder",
            "policy.yaml: workflows.consumer.steps[1].template: step 'first reminder' names template "
            "'frist_reminder', missing in en, nl (did you mean first_reminder?)",
        ),
        (
            "match: {kind: B2C}",
            "match: {kind: b2c}",
            "policy.yaml: segments[0].match.kind: 'b2c' is not one of B2B, B2C (did you mean B2C?)",
        ),
        ("\nlimits:", "\nlimit:", "policy.yaml: limit: unknown key (did you mean limits?)"),
    ],
)
def test_a_typo_in_the_sample_is_refused_with_the_key_or_value_meant(right, typo, message):
    text = SAMPLE_POLICY.read_text()
    assert right in text
    with pytest.raises(PolicyError) as raised:
        checked(text.replace(right, typo, 1))
    assert str(raised.value) == message


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(segment=[]), "policy.yaml: segment: unknown key (did you mean segments?)"),
        (lambda d: d["segments"][1].update(worklfow="business"),
         "policy.yaml: segments[1].worklfow: unknown key (did you mean workflow?)"),
        (lambda d: d["segments"][1]["match"].update(salesman="Jan"),
         "policy.yaml: segments[1].match.salesman: unknown key (did you mean salesperson?)"),
        (lambda d: d["workflows"]["business"].update(min_amount=100),
         "policy.yaml: workflows.business.min_amount: unknown key (did you mean min_amount_minor?)"),
        (lambda d: d["workflows"]["business"]["steps"][0].update(tones="firm"),
         "policy.yaml: workflows.business.steps[0].tones: unknown key (did you mean tone?)"),
        (lambda d: d["limits"].update(warning_shares=0.8),
         "policy.yaml: limits.warning_shares: unknown key (did you mean warning_share?)"),
        (lambda d: d["workflows"]["business"]["steps"][0].update(colour="red"),
         "policy.yaml: workflows.business.steps[0].colour: unknown key (known: name, offset_days, channel, "
         "template, tone, collection_costs, term_days)"),
    ],
)
def test_an_unknown_key_at_any_level_is_refused_with_the_nearest_known_one(data, change, message):
    data = copy.deepcopy(data)
    change(data)
    assert refused(data) == message


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["segments"][1]["match"].update(kind=["B2B", "b2b"]),
         "policy.yaml: segments[1].match.kind[1]: 'b2b' is not one of B2B, B2C (did you mean B2B?)"),
        (lambda d: d["workflows"]["business"]["steps"][2].update(tone="Firm"),
         "policy.yaml: workflows.business.steps[2].tone: 'Firm' is not one of friendly, neutral, firm, formal "
         "(did you mean firm?)"),
        (lambda d: d["workflows"]["business"]["steps"][2].update(channel="e-mail"),
         "policy.yaml: workflows.business.steps[2].channel: 'e-mail' is not one of call, collection, email, "
         "letter, sms (did you mean email?)"),
        (lambda d: d["workflows"]["business"]["steps"][2].update(channel="pigeon"),
         "policy.yaml: workflows.business.steps[2].channel: 'pigeon' is not one of call, collection, email, "
         "letter, sms"),
        (lambda d: d["segments"][0]["match"].update(currency="eur"),
         "policy.yaml: segments[0].match.currency: 'eur' is not a currency code of 3 upper-case letters "
         "(did you mean EUR?)"),
        (lambda d: d["segments"][0]["match"].update(currency=["EUR", "EURO"]),
         "policy.yaml: segments[0].match.currency[1]: 'EURO' is not a currency code of 3 upper-case letters"),
        (lambda d: d["segments"][0]["match"].update(language="NL"),
         "policy.yaml: segments[0].match.language: 'NL' is not one of en, nl (did you mean nl?)"),
        (lambda d: d["segments"][1].update(workflow="key-acount"),
         "policy.yaml: segments[1].workflow: unknown workflow 'key-acount' (did you mean key-account?)"),
    ],
)
def test_an_enumerated_value_must_be_one_the_platform_knows(data, change, message):
    data = copy.deepcopy(data)
    change(data)
    assert refused(data) == message


def test_channels_are_the_callers_and_without_them_any_name_passes(data):
    assert not hasattr(policy_module, "CHANNELS")  # the sinks own the channel registry
    data = copy.deepcopy(data)
    data["workflows"]["business"]["steps"][2]["channel"] = "pigeon"
    assert policy_from_dict(data).workflows["business"].steps[2].channel == "pigeon"
    assert refused(data, channels=("email", "pigeon")) == (
        "policy.yaml: workflows.consumer.steps[2].channel: 'sms' is not one of email, pigeon"
    )
    data["workflows"]["business"]["steps"][2]["channel"] = ""
    assert refused(data, channels=None) == (
        "policy.yaml: workflows.business.steps[2].channel: expected non-empty text, got ''"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["workflows"]["consumer"]["steps"][3].update(collection_costs="yes"),
         "policy.yaml: workflows.consumer.steps[3].collection_costs: expected true or false, got 'yes'"),
        (lambda d: d["workflows"]["consumer"]["steps"][3].update(collection_costs=1),
         "policy.yaml: workflows.consumer.steps[3].collection_costs: expected true or false, got 1"),
        (lambda d: d["workflows"]["consumer"]["steps"][0].update(offset_days=True),
         "policy.yaml: workflows.consumer.steps[0].offset_days: expected a whole number of days"),
        (lambda d: d["workflows"]["consumer"]["steps"][0].update(term_days=True),
         "policy.yaml: workflows.consumer.steps[0].term_days: expected a whole number of days >= 0"),
        (lambda d: d["workflows"]["consumer"].update(min_amount_minor=True),
         "policy.yaml: workflows.consumer.min_amount_minor: expected a whole number >= 0"),
        (lambda d: d["limits"].update(warning_share=True),
         "policy.yaml: limits.warning_share: expected a number in (0, 1]"),
        (lambda d: d["workflows"]["consumer"]["steps"][0].update(name=None),
         "policy.yaml: workflows.consumer.steps[0].name: expected non-empty text, got None"),
        (lambda d: d["workflows"]["consumer"]["steps"][0].update(template=7),
         "policy.yaml: workflows.consumer.steps[0].template: expected non-empty text, got 7"),
        (lambda d: d["segments"][1]["match"].update(segment=42),
         "policy.yaml: segments[1].match.segment: expected non-empty text, got 42"),
        (lambda d: d["segments"][0]["match"].update(language=False),
         "policy.yaml: segments[0].match.language: expected non-empty text, got False "
         "(quote it: YAML reads yes, no, on and off as true and false)"),
        (lambda d: d["segments"][0].update(match=[]),
         "policy.yaml: segments[0].match: expected a mapping (leave match out to match every debtor)"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(data, change, message):
    data = copy.deepcopy(data)
    change(data)
    assert refused(data) == message


def test_a_key_given_twice_is_refused_not_the_last_one_kept():
    sample = SAMPLE_POLICY.read_text()
    line = sample[:sample.index("tone: friendly}")].count("\n") + 1
    text = sample.replace("tone: friendly}", "tone: friendly, tone: firm}", 1)
    with pytest.raises(PolicyError, match=rf"(?s)^policy\.yaml: not valid YAML: .*found key 'tone' twice.*line {line}\b"):
        checked(text)


def test_merge_keys_may_still_be_overridden():
    old = "    min_amount_minor: 500\n"
    text = SAMPLE_POLICY.read_text().replace(old, "    <<: {min_amount_minor: 1}\n" + old, 1)
    assert checked(text).policy.workflows["consumer"].min_amount_minor == 500


# --------------------------------------------------------------------------- templates


def test_a_template_must_be_shipped_in_every_language(data):
    shipped = {"nl": TEMPLATES["nl"], "en": TEMPLATES["en"] - {"final_notice"}}
    assert refused(data, templates=shipped) == (
        "policy.yaml: workflows.consumer.steps[3].template: step '14-day letter' names template 'final_notice', "
        "missing in en"
    )


def test_without_templates_any_template_name_passes_and_an_empty_mapping_is_a_caller_error(data):
    data = copy.deepcopy(data)
    data["workflows"]["consumer"]["steps"][1]["template"] = "frist_reminder"
    assert policy_from_dict(data, channels=SINK_CHANNELS).workflows["consumer"].steps[1].template == "frist_reminder"
    with pytest.raises(ValueError, match="no language"):
        policy_from_dict(data, templates={})


# --------------------------------------------------------------------------- warnings


def test_a_segment_an_earlier_one_already_covers_is_warned_about(data):
    data = copy.deepcopy(data)
    data["segments"][1], data["segments"][2] = data["segments"][2], data["segments"][1]  # business first
    assert warnings_of(data) == (
        "policy.yaml: segments[2] (key-accounts): can match no debtor: segments[1] (business) before it "
        "already matches every debtor it would",
    )


def test_a_segment_that_accepts_a_value_no_earlier_one_does_is_not_warned_about(data):
    data = copy.deepcopy(data)
    data["segments"][2]["match"] = {"kind": ["B2B", "B2C"]}  # consumers took the B2C ones, not the B2B ones
    assert warnings_of(data) == ()


def test_every_segment_after_one_that_matches_every_debtor_is_warned_about(data):
    data["segments"].insert(0, {"name": "everyone", "workflow": "business"})
    assert warnings_of(data) == tuple(
        f"policy.yaml: segments[{i}] ({name}): can match no debtor: segments[0] (everyone) before it "
        "already matches every debtor it would"
        for i, name in enumerate(["consumers", "key-accounts", "business"], start=1)
    )


def test_a_segment_with_an_empty_list_of_values_is_warned_about(data):
    data["segments"][1]["match"]["segment"] = []
    assert warnings_of(data) == (
        "policy.yaml: segments[1] (key-accounts): can match no debtor: a match key lists no value",
    )


def test_a_workflow_no_segment_uses_is_warned_about_and_the_policy_still_loads(data):
    del data["segments"][0]  # consumers: the only user of the consumer workflow
    assert warnings_of(data) == ("policy.yaml: workflows.consumer: no segment uses this workflow",)
    policy = policy_from_yaml(yaml.safe_dump(data), channels=SINK_CHANNELS, templates=TEMPLATES)
    assert set(policy.workflows) == {"consumer", "key-account", "business"}


def test_a_null_match_or_limits_means_the_same_as_leaving_it_out():
    text = SAMPLE_POLICY.read_text(encoding="utf-8")
    plain = policy_from_yaml(text.replace("limits:\n  warning_share: 0.9", "limits: ~"))
    assert plain.limit_warning_bp == 9000
    matched = policy_from_yaml(text.replace("match: {kind: B2C}", "match: ~"))
    assert matched.segments[0].match == ()  # every debtor
