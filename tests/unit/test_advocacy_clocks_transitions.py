"""The transition rules: what each kind needs, its checklist, and when it can be completed."""

from __future__ import annotations

import pytest

from services.advocacy import domain


def test_only_turning_18_asks_for_consent_to_be_re_obtained():
    assert "consent_reobtained" in domain.checklist_for("turning_18")
    for kind in ("relocation", "move_on", "advocate_handover", "provider_handover"):
        assert domain.checklist_for(kind) == {
            "receiving_agency_informed": False,
            "accommodation_confirmed": False,
            "handover_summary_written": False,
        }


def test_a_provider_handover_needs_another_provider_and_an_advocate_handover_names_the_advocate():
    with pytest.raises(domain.TransitionInvalid, match="receiving_provider_id"):
        domain.ensure_transition_fields("provider_handover", receiving_provider_id=None, to_advocate_id=None,
                                        own_provider_id="a")  # fmt: skip
    with pytest.raises(domain.TransitionInvalid, match="another provider"):
        domain.ensure_transition_fields("provider_handover", receiving_provider_id="charity-a", to_advocate_id=None,
                                        own_provider_id="charity-a")  # fmt: skip
    with pytest.raises(domain.TransitionInvalid, match="only explicitly"):
        domain.ensure_transition_fields("advocate_handover", receiving_provider_id=None, to_advocate_id=None,
                                        own_provider_id="a")  # fmt: skip
    domain.ensure_transition_fields("relocation", receiving_provider_id=None, to_advocate_id=None, own_provider_id="a")


def test_ticking_an_item_puts_a_transition_in_progress_and_unknown_items_are_refused():
    checklist = domain.checklist_for("relocation")
    ticked = domain.tick_checklist(checklist, {"receiving_agency_informed": True})
    assert domain.status_after_ticks(ticked) == "in_progress"
    assert domain.status_after_ticks(checklist) == "planned"
    with pytest.raises(domain.TransitionInvalid, match="consent_reobtained"):
        domain.tick_checklist(checklist, {"consent_reobtained": True})


def test_a_transition_completes_only_with_its_checklist_done_and_only_while_open():
    checklist = domain.checklist_for("turning_18")
    with pytest.raises(domain.ChecklistIncomplete, match="consent_reobtained"):
        domain.ensure_checklist_complete("t-1", checklist)
    domain.ensure_checklist_complete("t-1", dict.fromkeys(checklist, True))
    for status in ("completed", "missed"):
        with pytest.raises(domain.TransitionClosed, match=f"t-1 is {status}"):
            domain.ensure_open_transition("t-1", status)
    domain.ensure_open_transition("t-1", "in_progress")


def test_an_18th_birthday_leaves_the_service_only_as_a_month():
    from datetime import date

    from services.advocacy.domain import event_date

    assert event_date("turning_18", date(2027, 3, 14)) == "2027-03"
    assert event_date("move_on", date(2027, 3, 14)) == "2027-03-14"
