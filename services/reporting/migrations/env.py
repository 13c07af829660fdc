from reporting.models import Base
from tt_common.migrations import run_migrations

run_migrations(Base.metadata, "REPORTING_DATABASE_URL")
