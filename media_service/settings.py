"""The media service's settings: everything ServiceSettings and LLMSettings (providers) read, plus its own."""

from pydantic import Field, model_validator

from shared import fleet
from shared.llm import LLMSettings
from shared.settings import ServiceSettings

MIB = 1024 * 1024


class Settings(LLMSettings, ServiceSettings):
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

    # Image generation (generation.py, providers.py; docs/media.md "Generation"). A provider without
    # its key is left out; the rest are tried in this order. Imagen runs in Vertex AI express mode
    # (VERTEX_API_KEY: google-genai 3.x calls Imagen through Vertex only), Gemini image output
    # through the Gemini API (GEMINI_API_KEY), OpenAI images with OPENAI_API_KEY/OPENAI_BASE_URL.
    media_image_providers: list[str] = ["imagen", "gemini", "replicate", "openai"]
    # OPENAI_API_KEY/OPENAI_BASE_URL, GEMINI_API_KEY and the moderation settings are shared/llm's
    # LLMSettings (recognition's router reads them too). OPENAI_API_KEY also serves moderation
    # (fails closed without it).
    vertex_api_key: str | None = None
    vertex_base_url: str | None = None  # None: the SDK's default (aiplatform.googleapis.com)
    gemini_genai_base_url: str | None = None  # None: the SDK's default (generativelanguage.googleapis.com)
    replicate_api_token: str | None = None
    replicate_base_url: str | None = None  # None: the SDK's default (api.replicate.com)
    media_imagen_model: str = "imagen-4.0-generate-001"
    media_gemini_image_model: str = "gemini-2.5-flash-image"
    media_replicate_model: str = "black-forest-labs/flux-schnell"
    media_openai_image_model: str = "gpt-image-1"
    # One provider attempt (Replicate's polling included) may take this long before the next is tried.
    media_provider_timeout_seconds: float = Field(90, gt=0)
    media_replicate_poll_seconds: float = Field(0.5, gt=0)
    # Async jobs: a worker holds a job's lease this long, renewing it while it runs; a job whose
    # lease ran out (its process died) is taken up by the next scan, every this many seconds.
    media_job_lease_seconds: float = Field(60, gt=0)
    media_job_scan_seconds: float = Field(15, gt=0)

    # Recognition (recognition.py): the vision model (default: the first vision model of a
    # configured provider), the longest side of the copy it is shown, and Content's search.
    media_vision_model: str | None = None
    media_vision_max_side: int = Field(1024, ge=64, le=4096)
    media_recognition_max_tokens: int = Field(600, ge=64, le=4096)
    content_service_url: str = f"http://127.0.0.1:{fleet.get('content').dev_port}"
    media_content_timeout_seconds: float = Field(3.0, gt=0, le=30)
    # One request recognising a picture holds its claim this long (identical requests wait for its
    # result); a claim its process left behind is taken over after it. Above the model's timeouts.
    media_recognition_claim_seconds: float = Field(180, gt=0, le=3600)

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
