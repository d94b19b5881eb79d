"""The auth service's own error codes (the shared ones are in shared.errors)."""

from __future__ import annotations

from shared import errors as shared_errors
from shared.errors import ErrorCode

# Sign-up, codes, login. A wrong or expired code is a refused credential (401), like a wrong password.
EMAIL_TAKEN = ErrorCode(409, "EMAIL_TAKEN", "An account with this email already exists; log in instead.")
INVALID_CODE = ErrorCode(400, "INVALID_CODE", "That code is not right.")
CODE_EXPIRED = ErrorCode(400, "CODE_EXPIRED", "This code has expired. Ask for a new one.")
CODE_LOCKED = ErrorCode(429, "CODE_LOCKED", "Too many wrong codes; this code is locked. Ask for a new one.")
EMAIL_DELIVERY_FAILED = ErrorCode(
    503,
    "EMAIL_DELIVERY_FAILED",
    "We could not send the email right now; nothing was lost, ask for a new code in a moment.",
)
INVALID_CREDENTIALS = ErrorCode(401, "INVALID_CREDENTIALS", "Wrong email or password.")
EMAIL_NOT_VERIFIED = ErrorCode(
    403, "EMAIL_NOT_VERIFIED", "Verify your email first: enter the code we sent you (POST /verify-otp)."
)

# Sessions.
INVALID_REFRESH_TOKEN = ErrorCode(401, "INVALID_REFRESH_TOKEN", "This refresh token is not valid; sign in again.")
REFRESH_TOKEN_EXPIRED = ErrorCode(401, "REFRESH_TOKEN_EXPIRED", "This refresh token has expired; sign in again.")
REFRESH_TOKEN_REUSED = ErrorCode(
    401, "REFRESH_TOKEN_REUSED", "This refresh token was already used; the session has been signed out for safety."
)

# OAuth.
INVALID_OAUTH_TOKEN = ErrorCode(401, "INVALID_OAUTH_TOKEN", "Sign-in refused.")
OAUTH_PROVIDER_UNAVAILABLE = ErrorCode(503, "OAUTH_PROVIDER_UNAVAILABLE", "Sign-in is unavailable right now.")

# The account.
# A signed token whose user Auth does not know: 401, from the shared catalogue (like USER_DELETED).
USER_NOT_FOUND = shared_errors.USER_NOT_FOUND
PREFERENCES_TOO_LARGE = ErrorCode(422, "PREFERENCES_TOO_LARGE", "preferences is too large.")

# Referrals: an unknown code is not found (404), your own one conflicts with who you are (409).
INVALID_REFERRAL_CODE = ErrorCode(404, "INVALID_REFERRAL_CODE", "That referral code does not exist.")
SELF_REFERRAL = ErrorCode(409, "SELF_REFERRAL", "You cannot use your own referral code.")
ACCOUNT_REQUIRED = ErrorCode(
    403, "ACCOUNT_REQUIRED", "Create an account (and verify its email) to use a referral code."
)
REFERRAL_ALREADY_APPLIED = ErrorCode(409, "REFERRAL_ALREADY_APPLIED", "You have already used a referral code.")
REFERRAL_WINDOW_CLOSED = ErrorCode(
    409, "REFERRAL_WINDOW_CLOSED", "Referral codes can only be applied soon after sign-up."
)

# Changing the email or the password while signed in.
EMAIL_UNCHANGED = ErrorCode(409, "EMAIL_UNCHANGED", "This is already your email address.")
NO_PENDING_EMAIL_CHANGE = ErrorCode(
    400, "NO_PENDING_EMAIL_CHANGE", "No email change is waiting for a code; ask for one (POST /users/me/email)."
)
WRONG_PASSWORD = ErrorCode(403, "WRONG_PASSWORD", "The current password is not right.")
PASSWORD_NOT_SET = ErrorCode(
    409, "PASSWORD_NOT_SET", "This account has no password yet; set one with POST /password/forgot."
)

# GET /internal/users/{id} (services asking whether a token's user exists): Auth has no such user.
NO_SUCH_USER = ErrorCode(404, "NO_SUCH_USER", "Auth has no user with this id.")
