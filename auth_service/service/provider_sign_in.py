"""Sign-in with a provider identity (Google, Apple, Facebook), once the provider has vouched for it
(auth_service.oauth)."""

from __future__ import annotations

from auth_service.oauth import ProviderIdentity
from auth_service.repositories import identities as identities_repo
from auth_service.repositories import users as users_repo
from auth_service.service.sessions import Sessions
from auth_service.service.users import Users
from shared.auth import CurrentUser


class ProviderSignIn(Users, Sessions):
    async def sign_in_with(self, identity: ProviderIdentity, guest_claims: CurrentUser | None) -> dict:
        """Finds or creates the account for a provider identity and signs it in.

        1. a known identity signs in its user;
        2. else a verified email that matches an account links to it (a pending, never-verified
           sign-up is confirmed and its password dropped: whoever set it never proved the address);
        3. else a guest's token turns the guest into this account (same id);
        4. else a new account is created.
        """
        notices: list[dict] = []
        async with self.pool.acquire() as conn:

            async def link(user_id) -> None:
                await identities_repo.insert(
                    conn, provider=identity.provider, subject=identity.subject, user_id=user_id, email=identity.email
                )

            async with conn.transaction():
                linked = await identities_repo.get(conn, identity.provider, identity.subject)
                user = await users_repo.get(conn, linked["user_id"], for_update=True) if linked else None
                if user is None and identity.email and identity.email_verified:
                    user = await users_repo.get_by_email(conn, identity.email, for_update=True)
                    if user is not None:
                        await link(user["id"])
                        if not user["confirmed"]:
                            user, notices = await self.confirm(conn, user, clear_password=True)
                if user is None and guest_claims is not None and guest_claims.is_guest and not guest_claims.is_service:
                    guest = await users_repo.get(conn, guest_claims.user_id, for_update=True)
                    if (
                        guest is not None
                        and guest["temporary_account"]
                        and not guest["confirmed"]
                        and guest["email"] in (None, identity.email)
                    ):
                        await link(guest["id"])
                        email = identity.email if identity.email_verified else None
                        user, notices = await self.confirm(conn, guest, email=email, clear_password=True)
                if user is None:
                    email = identity.email if identity.email_verified else None
                    if email and await users_repo.get_by_email(conn, email):
                        email = None  # cannot happen after step 2, kept for safety
                    user = await users_repo.insert(
                        conn, email=email, password_hash=None, confirmed=True, temporary=False
                    )
                    await link(user["id"])
                    profile = {k: v for k, v in (("name", identity.name), ("avatar_url", identity.picture)) if v}
                    if profile:
                        await users_repo.update_profile(conn, user["id"], profile)
                    await self.emit_created(conn, user, is_guest=False)
                await users_repo.touch_login(conn, user["id"])
                user = await users_repo.get(conn, user["id"])
                result = await self.auth_result(conn, user, provider=identity.provider)
        await self.send_referral_notices(notices)
        return result
