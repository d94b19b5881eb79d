"""Auth's domain layer: routers validate input and shape answers, repositories hold the SQL, this
package holds the rules.

- `codes`: one-time codes (hash, cooldown, attempts, delivery);
- `sessions`: refresh-token pairs and the access token minted with them, the user as shown;
- `referrals`: recording and applying referral codes;
- `users`: `user.created` / `user.updated` and confirming an account;
- `accounts`: the email flows (sign-up and who it claims, verify, login, guests, password reset);
- `provider_sign_in`: sign-in with a Google, Apple or Facebook identity;
- `account_changes`: a signed-in user changing their email or password.

`Auth` (app.state.auth) is all of them over one set of settings, pool and clients.
"""

from __future__ import annotations

from auth_service.service.account_changes import AccountChanges
from auth_service.service.accounts import Accounts
from auth_service.service.base import hash_refresh_token, new_code
from auth_service.service.provider_sign_in import ProviderSignIn


class Auth(Accounts, AccountChanges, ProviderSignIn):
    """The auth service's flows (see the modules)."""


__all__ = ["Auth", "hash_refresh_token", "new_code"]
