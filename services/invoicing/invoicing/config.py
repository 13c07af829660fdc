"""Invoicing's settings (env prefix INVOICING_)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tt_common.settings import DatabaseSettings, KafkaSettings, ServiceSettings


class InvoicingSettings(ServiceSettings, DatabaseSettings, KafkaSettings):
    model_config = SettingsConfigDict(env_prefix="INVOICING_", extra="ignore", frozen=True)

    service_name: str = "invoicing"
    projects_target: str
    tracking_target: str
    dependency_deadline_s: float = Field(default=10.0, gt=0)
    claim_attempts: int = Field(default=4, ge=1)
    claim_deadline_s: float = Field(default=120.0, gt=0, description="claims of 100k entries take seconds")
    topic_invoices: str = "timetracking.invoices.v1"

    s3_endpoint_url: str
    s3_public_endpoint_url: str | None = Field(default=None, description="host clients use in presigned URLs")
    s3_access_key: str
    s3_secret_key: str
    s3_bucket: str = "invoices"
    s3_region: str = "us-east-1"

    pdf_workers: int = Field(default=1, ge=1, description="processes rendering PDFs (WeasyPrint)")
    seller_name: str = "Your Agency Ltd"
    seller_address: str = "1 Example Street\nLondon EC1A 1AA\nUnited Kingdom"
    seller_tax_id: str = ""
    seller_bank_details: str = ""

    reconcile_interval_s: float = Field(default=30.0, gt=0)
    pending_grace_s: float = Field(
        default=60.0, ge=0, description="age of a PENDING generation before recovery"
    )
    overdue_interval_s: float = Field(default=300.0, gt=0)
    pdf_grace_s: float = Field(
        default=120.0, ge=0, description="age of a SENT invoice without PDF before recovery"
    )
    # Fault injection for the crash-recovery test: "after_claim" exits the process
    # right after tracking claimed the entries and before the invoice is saved.
    failpoint: str = ""
