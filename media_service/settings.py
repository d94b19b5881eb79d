"""The media service's settings: everything ServiceSettings reads, plus its own."""

from pydantic import Field, model_validator

from shared import fleet
from shared.settings import ServiceSettings

MIB = 1024 * 1024


class Settings(ServiceSettings):
    service_name: str = "media"
    port: int = fleet.get("media").dev_port
    media_database_url: str

    # Blob storage: a real account in production, Azurite locally (scripts/infra.sh prints it).
    azure_storage_connection_string: str = Field(..., min_length=20)
    azure_storage_container: str = Field("media", pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
    # Read-only SAS URLs handed to clients live this long (the contract: at most an hour).
    media_sas_ttl_seconds: int = Field(900, ge=1, le=3600)

    media_image_max_bytes: int = Field(10 * MIB, ge=1)
    media_audio_max_bytes: int = Field(20 * MIB, ge=1)
    # Decoded size limit (width x height): a decompression bomb is refused from its header.
    media_image_max_pixels: int = Field(40_000_000, ge=1)
    media_thumbnail_size: int = Field(256, ge=16, le=1024)
    # Pillow and audio parsing run in this many threads (bounded: the rest queue).
    media_cpu_workers: int = Field(2, ge=1, le=32)

    # Blobs and rows (docs/media.md): an upload's lease on its blobs lasts this long (far longer
    # than an upload takes); the sweep runs this often and deletes unreferenced, unleased blobs.
    media_blob_lease_seconds: float = Field(300, gt=0)
    media_sweep_interval_seconds: float = Field(60, gt=0)
    # Tests only (ENVIRONMENT=test): the process kills itself after writing an upload's blobs
    # and before writing its row, to prove the sweep cleans up after a crash.
    media_test_kill_after_blob_write: bool = False

    # Uploads are larger than the fleet's default body limit.
    max_body_bytes: int = 20 * MIB + 64 * 1024

    @model_validator(mode="after")
    def _coherent(self):
        if self.media_test_kill_after_blob_write and self.environment != "test":
            raise ValueError("MEDIA_TEST_KILL_AFTER_BLOB_WRITE is for tests only (ENVIRONMENT=test)")
        largest = max(self.media_image_max_bytes, self.media_audio_max_bytes)
        if self.max_body_bytes < largest:
            raise ValueError(f"MAX_BODY_BYTES ({self.max_body_bytes}) is below the largest upload limit ({largest})")
        return self
