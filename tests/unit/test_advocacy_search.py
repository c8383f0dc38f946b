"""The page's search over a blind index (casework.search), on the fake unit of work: names cut into
normalised tokens, each kept only as a keyed HMAC, written when a case opens or arrives by handover."""

from __future__ import annotations

import re

from test_advocacy_use_cases import Instance

from services.advocacy.casework.search import NAME, REFERENCE, SearchIndex, name_tokens
from services.advocacy.models import NrmRecord


def test_a_name_is_casefolded_stripped_of_accents_and_split_on_anything_not_a_letter():
    assert name_tokens("Ana-María  O’NEIL") == ["ana", "maria", "o", "neil"]
    assert name_tokens("ÉLODIE_2 d'Arc") == ["elodie", "d", "arc"]
    assert name_tokens("Straße") == ["strasse"]  # casefold
    assert name_tokens("Анна Иванова") == ["анна", "иванова"]  # letters of any script stay
    assert name_tokens("  --  ") == []


def test_the_index_holds_keyed_digests_only_and_another_key_gives_other_digests():
    referral = {"subject": {"given_name": "Zofía", "family_name": "Synthetic-Qor", "aliases": ["Zee"]},
                "external_reference": "REF-ABC-1"}  # fmt: skip
    one, other = SearchIndex("k" * 32), SearchIndex("j" * 32)
    digests = one.digests_of(referral)
    assert len(digests) == 5  # zofia, synthetic, qor, zee, the reference
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in digests)
    assert one.digest(NAME, "zofia") in digests and one.digest(REFERENCE, "ref-abc-1") in digests
    assert digests.isdisjoint(other.digests_of(referral))
    assert one.digest(NAME, "ref") != one.digest(REFERENCE, "ref")  # a name never matches a reference


def test_an_opened_case_is_found_by_every_word_of_its_names_or_by_its_references_exactly():
    charity = Instance()
    case = charity.open_case()  # the stub discloses Kalox Synthetic-Mizux
    index, uow = charity.rules.casework.index, charity.uow
    assert uow.search.tokens[case.id]
    assert index.find(uow, "kalox") == [case.id]
    assert index.find(uow, "  MIZUX  kálox ") == [case.id]
    assert index.find(uow, "kalox nobody") == []  # every word must match
    assert index.find(uow, "kal") == []  # whole tokens, not prefixes
    uow.nrm.add(NrmRecord(case_id=case.id, provider_id=case.provider_id, nrm_reference="NRM-9"))
    assert index.find(uow, " NRM-9 ") == [case.id] and index.find(uow, "NRM-") == []


def test_a_case_arriving_by_handover_is_indexed_with_its_referral():
    charity = Instance()
    case = charity.open_case()
    charity.uow.search.tokens.clear()
    referral = {"subject": {"given_name": "Quill", "family_name": "Synthetic-Arrow"}, "external_reference": "R-7"}
    with charity.uow:
        charity.rules.casework.attach_referral(charity.uow, case, referral, actor="intake")
    index = charity.rules.casework.index
    assert index.find(charity.uow, "quill arrow") == [case.id] and index.find(charity.uow, "r-7") == [case.id]
    assert index.find(charity.uow, "kalox") == []  # the index is replaced, not added to


def test_the_key_comes_from_search_index_key_and_is_required_with_a_real_identity_provider():
    import pytest

    from services.advocacy.config import DEV_SEARCH_INDEX_KEY, AdvocacyConfig
    from shared.config import ConfigError, Settings
    from shared.crypto import DEV_KEK_FILE, ensure_kek_file

    def config(**env: str) -> AdvocacyConfig:
        return AdvocacyConfig.from_settings(Settings.from_env("advocacy", env={"PROVIDER_ID": "p", **env}))

    assert config().search_index_key == DEV_SEARCH_INDEX_KEY  # dev and tests
    assert config(SEARCH_INDEX_KEY="s" * 40).search_index_key == "s" * 40
    production = {"AUTH_TOKEN_URL": "https://idp.example/token", "AUTH_CLIENT_SECRET": "x"}
    with pytest.raises(ConfigError, match="SEARCH_INDEX_KEY is not set"):
        config(**production)
    with pytest.raises(ConfigError, match="at least 32"):
        config(**production, SEARCH_INDEX_KEY="short")
    ensure_kek_file(DEV_KEK_FILE)
    kek = {"DATA_KEK_FILE": str(DEV_KEK_FILE)}
    assert config(**production, **kek, SEARCH_INDEX_KEY="p" * 32).search_index_key == "p" * 32
