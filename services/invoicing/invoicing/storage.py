"""Invoice PDFs in S3-compatible storage (boto3, run off the event loop)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import boto3
from botocore.client import Config

from .config import InvoicingSettings


def pdf_key(invoice_id: uuid.UUID) -> str:
    return f"invoices/{invoice_id}.pdf"


class PdfStore:
    def __init__(self, settings: InvoicingSettings) -> None:
        self.bucket = settings.s3_bucket
        common: dict[str, Any] = {
            "aws_access_key_id": settings.s3_access_key,
            "aws_secret_access_key": settings.s3_secret_key,
            "region_name": settings.s3_region,
            "config": Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        }
        self._client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, **common)
        # Presigned URLs are signed for the host the downloader will use.
        public = settings.s3_public_endpoint_url or settings.s3_endpoint_url
        self._signer = boto3.client("s3", endpoint_url=public, **common)

    async def put(self, key: str, content: bytes, *, number: str) -> None:
        await asyncio.to_thread(
            self._client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=content,
            ContentType="application/pdf",
            ContentDisposition=f'attachment; filename="{number}.pdf"',
        )

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self._client.head_object, Bucket=self.bucket, Key=key)
            return True
        except self._client.exceptions.ClientError:
            return False

    def presigned_url(self, key: str, expires_in: int) -> str:
        return self._signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )
