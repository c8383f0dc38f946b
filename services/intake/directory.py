"""The provider directory's one write: registering a provider, or updating its entry (the API and seed_demo)."""

from __future__ import annotations

from typing import Any

from services.intake.models import Provider
from services.intake.uow import IntakeUnits
from shared.clock import utcnow


def register(units: IntakeUnits, provider_id: str, entry: dict[str, Any]) -> tuple[Provider, bool]:
    """Returns (the provider as now registered, whether it is new)."""
    with units() as uow:
        provider = uow.providers.get(provider_id)
        created = provider is None
        if provider is None:
            provider = Provider(id=provider_id)
            uow.providers.add(provider)
        for key, value in entry.items():
            setattr(provider, key, value)
        provider.updated_at = utcnow()
        return provider, created
