"""Payment references: the Dutch betalingskenmerk and the ISO 11649 RF reference."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.references import (
    betalingskenmerk_for,
    describe,
    is_valid_betalingskenmerk,
    is_valid_reference,
    is_valid_rf,
    normalise,
    reference_for,
    rf_for,
)

# --------------------------------------------------------------------------- betalingskenmerk


def test_sixteen_digit_example_validates():
    assert is_valid_betalingskenmerk("5000056789012345")


def test_invoice_number_gets_length_code_and_check_digit():
    assert betalingskenmerk_for("12345678") == "4812345678"
    assert is_valid_betalingskenmerk("4812345678")


@pytest.mark.parametrize("wrong", ["6000056789012345", "4000056789012345", "5812345678", "3812345678"])
def test_wrong_check_digit_is_refused(wrong):
    assert not is_valid_betalingskenmerk(wrong)
    assert not is_valid_reference(wrong)


def test_wrong_length_code_is_refused():
    # check digit recomputed for the body, but 8 digits follow a length code of 9
    assert not is_valid_betalingskenmerk("9912345678")


def test_seven_digits_carry_no_check_digit_and_are_accepted():
    assert is_valid_betalingskenmerk("1234567")
    assert is_valid_betalingskenmerk("7654321")


@pytest.mark.parametrize("bad", ["", "12345", "12345678", "123456789012345", "50000567890123456", "50000A6789012345"])
def test_other_lengths_and_letters_are_refused(bad):
    assert not is_valid_betalingskenmerk(bad)


def test_fifteen_digits_become_a_sixteen_digit_reference():
    assert betalingskenmerk_for("000056789012345") == "5000056789012345"


@pytest.mark.parametrize("number", ["123456", "1234567890123", "12-345678", ""])
def test_numbers_that_cannot_become_a_betalingskenmerk(number):
    with pytest.raises(ValueError):
        betalingskenmerk_for(number)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([7, 8, 9, 10, 11, 12, 15]).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)))
def test_every_generated_betalingskenmerk_validates(number):
    reference = betalingskenmerk_for(number)
    assert reference.endswith(number)
    assert is_valid_betalingskenmerk(reference)
    assert is_valid_reference(reference)


# --------------------------------------------------------------------------- RF (ISO 11649)


@pytest.mark.parametrize(
    "base, reference", [("539007547034", "RF18539007547034"), ("AB2G59X56V543", "RF19AB2G59X56V543")]
)
def test_rf_examples(base, reference):
    assert rf_for(base) == reference
    assert is_valid_rf(reference)
    assert is_valid_reference(reference)


@pytest.mark.parametrize("wrong", ["RF19539007547034", "RF18539007547035", "RF18", "XX18539007547034"])
def test_rf_with_wrong_check_digits_is_refused(wrong):
    assert not is_valid_rf(wrong)


def test_rf_base_is_normalised_before_the_check_digits_are_computed():
    assert rf_for("5390 0754 7034") == "RF18539007547034"
    assert rf_for("ab2g59x56v543") == "RF19AB2G59X56V543"


@settings(max_examples=200, deadline=None)
@given(st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=21))
def test_every_generated_rf_reference_validates(base):
    reference = rf_for(base)
    assert reference.startswith("RF") and reference.endswith(base)
    assert is_valid_reference(reference)


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "written, indexed",
    [
        ("rf18 5390 0754 7034", "RF18539007547034"),
        ("RF18-5390.0754-7034", "RF18539007547034"),
        (" 5000 0567 8901 2345 ", "5000056789012345"),
        ("4812.345.678", "4812345678"),
    ],
)
def test_spaces_dots_dashes_and_case_do_not_matter(written, indexed):
    assert normalise(written) == indexed
    assert is_valid_reference(written)


# --------------------------------------------------------------------------- a reference for an invoice


@pytest.mark.parametrize("number, scheme, reference", [
    ("12345678", "auto", "4812345678"),  # DOMAIN.md: invoice number 12345678
    ("539007547034", "rf", "RF18539007547034"),  # DOMAIN.md's RF examples
    ("AB2G59X56V543", "auto", "RF19AB2G59X56V543"),
    ("F2025-0117", "auto", "RF33F20250117"),  # letters: RF, of the letters and digits
    ("000056789012345", "auto", "5000056789012345"),  # 15 digits: the 16-digit form
])
def test_an_invoice_number_gets_the_reference_its_form_allows(number, scheme, reference):
    assert reference_for(number, scheme) == reference
    assert describe(reference)[0] and is_valid_reference(reference)


@pytest.mark.parametrize("number, scheme, says", [
    ("F-1", "betalingskenmerk", "digits only"),
    ("1" * 22, "auto", "more than the 21"),
    ("--", "auto", "no letters or digits"),
    ("12345678", "iban", "scheme must be one of"),
])
def test_an_invoice_number_that_allows_no_reference_is_refused_with_the_reason(number, scheme, says):
    with pytest.raises(ValueError, match=says):
        reference_for(number, scheme)


@pytest.mark.parametrize("reference, valid, says", [
    ("5000 0567 8901 2345", True, "betalingskenmerk"),
    ("5000056789012346", False, "check digit"),
    ("1234567", True, "no check digit"),
    ("12345", False, "not 5"),
    ("RF18 5390 0754 7034", True, "RF creditor reference"),
    ("RF19539007547034", False, "check digits fail"),
    ("INV-2025", False, "neither"),
])
def test_a_reference_is_described_as_what_it_is(reference, valid, says):
    assert describe(reference)[0] is valid
    assert says in describe(reference)[1]
