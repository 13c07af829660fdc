from invoicing.models import Base
from tt_common.migrations import run_migrations

run_migrations(Base.metadata, "INVOICING_DATABASE_URL")
