"""Identifiers as docs/interfaces.md states them: addresses, chain slugs, token symbols and
transaction hashes.

- No whitespace at either end, no control or invisible character anywhere (a byte-order mark, a
  zero-width space, a newline, a no-break space): each would make a look-alike of a real wallet or
  token, a second balance beside the first that nobody can see in an export.
- No leading ``=``, ``+``, ``-`` or ``@``: a spreadsheet opening an export runs such a cell as a formula.
- ``0x`` + 40 hex digits is an EVM address: one wallet per chain whatever its letter case, so it is
  stored in its EIP-55 checksummed form; a mixed-case address whose checksum is wrong is a typo and
  is refused. Every other address (Solana, Bitcoin, …) is exact.

The importers, the admin (model validation) and the system check (bagtracker/checks.py) all ask
``identifier_problem``; the database CHECKs of migration 0003 are a cheaper backstop of the same rules.
"""

import functools
import re
import unicodedata

from Crypto.Hash import keccak

FORMULA_PREFIXES = ("=", "+", "-", "@")
# Categories of characters nobody sees: control (Cc), format (Cf: BOM, zero-width, bidi marks),
# surrogates, private use, unassigned, and line/paragraph separators.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class BadIdentifier(ValueError):
    """An identifier that breaks a rule; the message names it and says which rule."""


def _character(char):
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def identifier_problem(value):
    """What is wrong with ``value`` as an identifier, for people ('' when nothing)."""
    # Printable ASCII (every real address, hash, slug and most symbols) has no control or invisible
    # character: one C-level test instead of a look-up per character.
    clean_characters = value.isascii() and value.isprintable()
    for position, char in enumerate("" if clean_characters else value, start=1):
        category = unicodedata.category(char)
        if category in INVISIBLE_CATEGORIES or (category == "Zs" and char != " "):
            return f"contains an invisible or control character ({_character(char)}) at position {position}"
    if value != value.strip():
        return "begins or ends with whitespace"
    if value.startswith(FORMULA_PREFIXES):
        return f"begins with {value[0]!r} (a spreadsheet would run it as a formula)"
    return ""


def check_identifier(value, name):
    """``value`` unchanged, or BadIdentifier naming the field (``name``) and the rule it breaks."""
    problem = identifier_problem(value)
    if problem:
        raise BadIdentifier(f"{name} {_shown(value)} {problem}")
    return value


def is_evm_address(value):
    return bool(_EVM_ADDRESS.fullmatch(value))


@functools.lru_cache(maxsize=65536)  # an import names the same few wallets on many rows
def checksum_address(value):
    """The EIP-55 form of an EVM address: each hex letter upper-case where the matching nibble of
    keccak256(lower-case hex) is 8 or more (pycryptodome's Keccak, never a hand-written one)."""
    hex_digits = value[2:].lower()
    digest = keccak.new(digest_bits=256, data=hex_digits.encode("ascii")).hexdigest()
    return "0x" + "".join(c.upper() if int(h, 16) >= 8 else c for c, h in zip(hex_digits, digest[:40], strict=True))


def canonical_address(value, name="address"):
    """The address as stored: EVM addresses in EIP-55 form (a wrong mixed-case checksum refused),
    others exactly as given. Raises BadIdentifier."""
    check_identifier(value, name)
    if not is_evm_address(value):
        return value
    canonical = checksum_address(value)
    hex_digits = value[2:]
    mixed_case = hex_digits != hex_digits.lower() and hex_digits != hex_digits.upper()
    if mixed_case and value != canonical:
        # Not "did you mean …": the checksum of a mistyped address is that of the wrong address.
        raise BadIdentifier(f"{name} {value} has a wrong EIP-55 checksum: a typo? (all lower case skips the check)")
    return canonical


def address_problem(value):
    """identifier_problem, plus an EVM address not in its EIP-55 form ('' when nothing)."""
    problem = identifier_problem(value)
    if not problem and is_evm_address(value) and value != checksum_address(value):
        problem = f"is not in its EIP-55 checksummed form ({checksum_address(value)})"
    return problem


def _shown(value, limit=40):
    return repr(value) if len(value) <= limit else f"{value[: limit // 2]!r}… ({len(value):,} characters)"


# --- model validation (the admin's forms, full_clean) ---------------------------------------------


def validate_identifier(value):
    """A model field validator: the rules above, as a form error."""
    from django.core.exceptions import ValidationError

    problem = identifier_problem(value)
    if problem:
        raise ValidationError(f"{_shown(value)} {problem}", code="identifier")
