from tracking.models import Base
from tt_common.migrations import run_migrations

run_migrations(Base.metadata, "TRACKING_DATABASE_URL")
