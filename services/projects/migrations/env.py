from projects.models import Base
from tt_common.migrations import run_migrations

run_migrations(Base.metadata, "PROJECTS_DATABASE_URL")
