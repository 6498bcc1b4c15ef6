"""The one phone masker (``phones.mask``, ``phones.mask_numbers``): ``••••`` and the last 4 digits, wherever
a number would otherwise be shown (logs, API error messages, the ledger, the CLI, dry runs)."""

from __future__ import annotations

from worker.errors import Stage
from worker.phones import mask, mask_numbers
from worker.salesforce.client import classify_errors


def test_mask_keeps_the_last_four_digits_of_any_spelling() -> None:
    spellings = ["9999901234", "+91 99999 01234", "+91-99999-01234", "099999 01234", "(+91) 9999901234"]
    assert {mask(s) for s in spellings} == {"••••1234"}
    assert (mask("123"), mask(""), mask(None)) == ("••••", "", "")


def test_mask_numbers_masks_phone_runs_and_leaves_dates_ids_and_counts() -> None:
    text = "no Lead for +91 99999 01234 (call 2024-12-25T10:01:34Z, Lead 00Q5g000000015nEAA, 12345678 rows)"
    assert mask_numbers(text) == (
        "no Lead for ••••1234 (call 2024-12-25T10:01:34Z, Lead 00Q5g000000015nEAA, 12345678 rows)"
    )


def test_salesforce_error_messages_use_the_same_mask() -> None:
    error = classify_errors([{"errorCode": "DUPLICATES_DETECTED", "message": "Phone 9999901234 exists"}], 400)
    assert error.stage is Stage.WRITE and "Phone ••••1234 exists" in error.message
