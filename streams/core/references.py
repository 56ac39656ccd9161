"""Payment references: the Dutch betalingskenmerk and the ISO 11649 RF creditor reference.

A reference is only trusted for automatic matching when its check digits validate.
"""

from __future__ import annotations

from stdnum import iso11649

_LENGTH_CODES = {7: "7", 8: "8", 9: "9", 10: "0", 11: "1", 12: "2"}


def normalise(reference: str) -> str:
    """Upper case without spaces, dots or dashes: the form references are indexed in."""
    upper = reference.upper()
    if upper.isalnum():
        return upper  # already clean, as most are
    stripped = upper.replace("-", "").replace(" ", "")
    if stripped.isalnum():
        return stripped  # the usual separators only: quicker than looking at every character
    return "".join(ch for ch in upper if ch.isalnum())


def _check_digit(digits: str) -> int:
    # The weights 2, 4, 8, 5, 10, 9, 7, 3, 6, 1 are the powers of two modulo 11. As
    # 13 = 2 (mod 11), reading the digits as a base-13 number sums digit x 2^position
    # modulo 11; doubled, that is the weighted sum modulo 11, in one call to int().
    total = 2 * int(digits, 13) % 11
    check = 11 - total
    return 1 if check == 10 else 0 if check == 11 else check


def is_valid_betalingskenmerk(reference: str) -> bool:
    return _valid_betalingskenmerk(normalise(reference))


def _valid_betalingskenmerk(ref: str) -> bool:
    if not (ref.isascii() and ref.isdigit()):
        return False
    if len(ref) == 7:
        return True  # 7 digits carry no check digit
    if len(ref) == 16:
        return int(ref[0]) == _check_digit(ref[1:])
    if 9 <= len(ref) <= 14:
        length_code, rest = ref[1], ref[2:]
        if _LENGTH_CODES.get(len(rest)) != length_code:
            return False
        return int(ref[0]) == _check_digit(ref[1:])
    return False


def betalingskenmerk_for(number: str) -> str:
    """A betalingskenmerk for an invoice number of 7 to 12 digits (length code included)
    or of 15 digits."""
    if not number.isdigit():
        raise ValueError(f"{number!r}: a betalingskenmerk holds digits only")
    if len(number) == 15:
        return f"{_check_digit(number)}{number}"
    if len(number) in _LENGTH_CODES:
        body = _LENGTH_CODES[len(number)] + number
        return f"{_check_digit(body)}{body}"
    raise ValueError(f"{number!r}: needs 7 to 12 or 15 digits")


def is_valid_rf(reference: str) -> bool:
    return iso11649.is_valid(reference)


def rf_for(base: str) -> str:
    """An ISO 11649 creditor reference (RF + check digits + base)."""
    base = normalise(base)
    check = iso11649.mod_97_10.calc_check_digits(base + "RF")
    return f"RF{check}{base}"


def is_valid_reference(reference: str) -> bool:
    return is_valid_normalised_reference(normalise(reference))


def is_valid_normalised_reference(ref: str) -> bool:
    """``is_valid_reference`` for a reference that ``normalise`` returned."""
    return is_valid_rf(ref) if ref.startswith("RF") else _valid_betalingskenmerk(ref)


SCHEMES = ("auto", "betalingskenmerk", "rf")
RF_BASE_MAX = 21  # characters after "RF" and the two check digits


def reference_for(invoice_number: str, scheme: str = "auto") -> str:
    """The payment reference to print on an invoice: a betalingskenmerk for an invoice
    number of 7 to 12 or 15 digits, otherwise (or with ``scheme="rf"``) an ISO 11649 RF
    reference of its letters and digits. ``ValueError`` names why none can be made."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    number = normalise(invoice_number)
    if not number:
        raise ValueError(f"{invoice_number!r}: holds no letters or digits")
    fits_betalingskenmerk = number.isdigit() and (len(number) in _LENGTH_CODES or len(number) == 15)
    if scheme == "betalingskenmerk" or (scheme == "auto" and fits_betalingskenmerk):
        return betalingskenmerk_for(number)
    if not number.isascii():
        raise ValueError(f"{invoice_number!r}: an RF reference holds letters A-Z and digits only")
    if len(number) > RF_BASE_MAX:
        raise ValueError(f"{invoice_number!r}: {len(number)} letters and digits, more than the {RF_BASE_MAX} "
                         "an RF reference holds")
    return rf_for(number)


def describe(reference: str) -> tuple[bool, str]:
    """Whether a reference is valid for matching, and what it is (or why not), in words."""
    ref = normalise(reference)
    if ref.startswith("RF"):
        return (True, "ISO 11649 RF creditor reference") if is_valid_rf(ref) else (
            False, "RF reference whose check digits fail")
    if not (ref.isascii() and ref.isdigit()):
        return False, "neither an RF reference nor a betalingskenmerk (digits only)"
    if len(ref) not in (7, 16) and not 9 <= len(ref) <= 14:
        return False, f"a betalingskenmerk has 7, 9 to 14 or 16 digits, not {len(ref)}"
    if _valid_betalingskenmerk(ref):
        return True, "betalingskenmerk" + (" (7 digits, no check digit)" if len(ref) == 7 else "")
    return False, "betalingskenmerk whose check digit or length code fails"
