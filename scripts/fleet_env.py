"""Writes the local fleet's environment (.local/fleet.env) and says loudly what is sandboxed.

Local infrastructure from scripts/infra.sh; each external provider whose key is not set in the
environment is pointed at the local sandbox (`python -m sandbox`), which speaks its real wire
protocol with a dummy key. Set a real key (and leave its base URL unset) to use the provider.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.control import env_for  # noqa: E402
from sandbox.testing import DUMMY_KEYS  # noqa: E402
from shared import fleet  # noqa: E402
from shared.testing.env import AZURITE_CONNECTION_STRING  # noqa: E402

SANDBOX_URL = os.environ.get("SANDBOX_URL", f"http://127.0.0.1:{fleet.SANDBOX_PORT}")
# A service's own variables (CHAT_..., MEDIA_...) pass through to the fleet when set.
SERVICE_PREFIXES = tuple(f"{s.name.upper()}_" for s in fleet.SERVICES)
PG = os.environ.get("PG_BASE", "postgresql://postgres:postgres@127.0.0.1:5432")

# provider -> (the key that means "use the real one", the variables the sandbox stands in for)
PROVIDERS = {
    "Anthropic": ("ANTHROPIC_API_KEY", ["ANTHROPIC_BASE_URL"]),
    "OpenAI": ("OPENAI_API_KEY", ["OPENAI_BASE_URL"]),
    "Groq": ("GROQ_API_KEY", ["GROQ_BASE_URL"]),
    "DeepSeek": ("DEEPSEEK_API_KEY", ["DEEPSEEK_BASE_URL"]),
    "Gemini": ("GEMINI_API_KEY", ["GEMINI_BASE_URL"]),
    "Stripe": (
        "STRIPE_SECRET_KEY",
        ["STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET", "STRIPE_PRICE_PRO", "STRIPE_PRICE_MAX"],
    ),
    "TMDB": ("TMDB_API_KEY", ["TMDB_BASE_URL"]),
    "SendGrid": ("SENDGRID_API_KEY", ["SENDGRID_BASE_URL"]),
    "Wikipedia": ("WIKIPEDIA_BASE_URL", ["WIKIPEDIA_BASE_URL"]),
    "Google/Apple/Facebook sign-in": ("GOOGLE_CLIENT_IDS", ["GOOGLE_JWKS_URL", "APPLE_JWKS_URL", "FACEBOOK_GRAPH_URL"]),
    "Gemini images": ("GEMINI_API_KEY", ["GEMINI_GENAI_BASE_URL"]),
    "Imagen (Vertex AI)": ("VERTEX_API_KEY", ["VERTEX_BASE_URL"]),
    "Replicate": ("REPLICATE_API_TOKEN", ["REPLICATE_BASE_URL"]),
    # Expo's push service needs no key: set EXPO_PUSH_BASE_URL=https://exp.host/--/api/v2 for the real one.
    "Expo push": ("EXPO_PUSH_BASE_URL", ["EXPO_PUSH_BASE_URL"]),
}


def main() -> int:
    local = ROOT / ".local"
    local.mkdir(exist_ok=True)
    secret_file = local / "jwt-secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(48))
    env = {
        "ENVIRONMENT": "development",
        **{var: f"{PG}/{name}" for var, name in fleet.database_vars().items()},
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
        # Azurite (scripts/infra.sh) unless a real account is given.
        "AZURE_STORAGE_CONNECTION_STRING": os.environ.get("AZURE_STORAGE_CONNECTION_STRING", AZURITE_CONNECTION_STRING),
        "AZURE_STORAGE_CONTAINER": os.environ.get("AZURE_STORAGE_CONTAINER", "media"),
        "SUPABASE_JWT_SECRET": os.environ.get("SUPABASE_JWT_SECRET") or secret_file.read_text().strip(),
        "MIGRATE_ON_START": "0",  # dev.sh runs `python -m shared.migrate` for each service first
        "CONTENT_DATA_DIR": str(local / "content-data"),
        "EMAIL_BACKEND": os.environ.get("EMAIL_BACKEND", "file"),
        "EMAIL_OUTBOX_DIR": str(local / "emails"),
        "FRONTEND_URL": os.environ.get("FRONTEND_URL", "http://localhost:3000"),
        "LOG_JSON": os.environ.get("LOG_JSON", "1"),
    }
    sandbox = env_for(SANDBOX_URL)
    sandboxed = []
    for name, (key, variables) in PROVIDERS.items():
        if os.environ.get(key):
            env[key] = os.environ[key]
            for var in variables:
                if os.environ.get(var):
                    env[var] = os.environ[var]
            continue
        sandboxed.append(name)
        for var in variables:
            env[var] = sandbox.get(var) or DUMMY_KEYS[var]
        if key in DUMMY_KEYS:
            env[key] = DUMMY_KEYS[key]
    if "Google/Apple/Facebook sign-in" in sandboxed:
        env.update(GOOGLE_CLIENT_IDS="sandbox-google-client", APPLE_CLIENT_IDS="sandbox.apple.client")
    # Passed through when set: anything else a service reads (Sentry, RevenueCat, Facebook app...).
    for key, value in os.environ.items():
        if key.startswith(("SENTRY_", "REVENUECAT_", "FACEBOOK_APP_", "STRIPE_", *SERVICE_PREFIXES)):
            env.setdefault(key, value)
    (local / "fleet.env").write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
    if sandboxed:
        line = "!" * 100
        print(line)
        print("!!  LOCAL SANDBOX: no key set for " + ", ".join(sandboxed) + ".")
        print(
            f"!!  Those providers are the local stand-ins at {SANDBOX_URL} (sandbox/README.md), NOT the real services:"
        )
        print("!!  replies are deterministic, payments are fake, emails land in .local/emails/.")
        print(line)
    print("sandbox" if sandboxed else "no-sandbox")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
