"""The credit policy file: the sample loads and picks the right workflow; every
mistake in a policy is refused with the place it sits."""

import copy

import pytest
import yaml

from streams.core.policy import PolicyError, policy_from_dict, policy_from_yaml
from streams.core.state import Debtor
from tests.scenario import SAMPLE_POLICY, sample_policy


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


def refused(data: dict) -> str:
    with pytest.raises(PolicyError) as raised:
        policy_from_dict(data, "policy.yaml")
    return str(raised.value)


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
