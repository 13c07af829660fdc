"""The projects service's tables. Domain tables arrive with the projects issue; the outbox
is here from the start because every change event leaves through it."""

from sqlalchemy.orm import DeclarativeBase

from tt_common.db import make_metadata
from tt_common.outbox import outbox_table


class Base(DeclarativeBase):
    metadata = make_metadata()


outbox = outbox_table(Base.metadata)
