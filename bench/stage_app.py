"""The bare Flask stage the benchmark measures as a ceiling: validate a referral and insert it with an outbox
row, in one transaction, and nothing else (no auth, no flask-smorest, no tracing, no routing).

    BENCH_STAGE_DATABASE_URL=postgresql+psycopg://... gunicorn -c deploy/gunicorn.conf.py 'bench.stage_app:create_app()'

It validates with intake's own schema, so the ceiling costs what intake's validation costs.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime

from flask import Flask, request
from marshmallow import ValidationError
from sqlalchemy import JSON, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.intake.schemas import ReferralInSchema
from shared.clock import utcnow
from shared.db import UTCDateTime, make_engine, make_session_factory
from shared.messaging.envelope import Event
from shared.outbox import OutboxMixin


class Base(DeclarativeBase):
    pass


class Referral(Base):
    __tablename__ = "referrals"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    external_reference: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Outbox(Base, OutboxMixin):
    pass


def create_schema(url: str) -> None:
    """Made once by the benchmark before gunicorn starts (workers creating it at once would collide)."""
    engine = make_engine(url, instrument=False)
    Base.metadata.create_all(engine)
    engine.dispose()


def create_app() -> Flask:
    engine = make_engine(os.environ["BENCH_STAGE_DATABASE_URL"], instrument=False)
    sessions = make_session_factory(engine)
    schema = ReferralInSchema()
    app = Flask(__name__)

    @app.post("/v1/referrals")
    def submit():
        try:
            body = schema.load(request.get_json())
        except ValidationError as exc:
            return {"errors": exc.messages}, 422
        referral_id = str(uuid.uuid4())
        with sessions.begin() as session:
            session.add(
                Referral(
                    id=referral_id,
                    external_reference=body["external_reference"],
                    body=request.get_json(),
                    received_at=utcnow(),
                )
            )
            data = {"referral_id": referral_id}
            event = Event(type="referral.received", source="/bench", subject=referral_id, data=data)
            now = utcnow()
            # The outbox row a unit of work's stage() adds (shared.uow.SqlUnitOfWork.stage), without its trace
            # context or NOTIFY: this stage is the machine's bare ceiling.
            session.add(
                Outbox(id=event.id, type=event.type, routing_key=event.type, payload=event.to_json().decode(),
                       created_at=now, next_attempt_at=now, attempts=0)
            )  # fmt: skip
        return {"id": referral_id}, 201

    @app.get("/readyz")
    def ready():
        return {"status": "ready"}

    return app
