"""Who a sign-up claims (auth_service.service.accounts: Accounts.claim_address), on the real core
database, each case in a transaction rolled back at the end."""

import uuid

import pytest

from auth_service.repositories import users as users_repo
from shared.auth import SERVICE_ROLE, CurrentUser
from shared.errors import APIError

pytestmark = pytest.mark.asyncio(loop_scope="session")


def guest_claims(user_id, *, guest=True, role="authenticated") -> CurrentUser:
    return CurrentUser(user_id=str(user_id), email=None, role=role, tier=0, claims={"is_anonymous": guest})


def address() -> str:
    return f"claim-{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture
async def conn(db):
    async with db.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            yield conn
        finally:
            await tx.rollback()


async def insert(conn, email, *, confirmed=False, temporary=False):
    return await users_repo.insert(conn, email=email, password_hash=None, confirmed=confirmed, temporary=temporary)


@pytest.fixture
def auth(client):
    return client.app.state.auth


async def test_a_new_address_claims_nobody(auth, conn):
    assert await auth.claim_address(conn, address(), None) is None


async def test_a_verified_account_refuses(auth, conn):
    email = address()
    await insert(conn, email, confirmed=True)
    with pytest.raises(APIError) as refused:
        await auth.claim_address(conn, email, None)
    assert refused.value.code == "EMAIL_TAKEN" and refused.value.status == 409


async def test_the_latest_sign_up_takes_over_a_pending_one(auth, conn):
    email = address()
    pending = await insert(conn, email)
    assert (await auth.claim_address(conn, email, None))["id"] == pending["id"]


async def test_another_guests_pending_claim_is_released_and_the_guest_kept(auth, conn):
    email = address()
    squatter = await insert(conn, email, temporary=True)
    assert await auth.claim_address(conn, email, None) is None
    kept = await users_repo.get(conn, squatter["id"])
    assert kept is not None and kept["email"] is None and kept["temporary_account"]


async def test_a_guest_claims_the_address_and_a_pending_sign_up_is_dropped(auth, conn):
    email = address()
    pending = await insert(conn, email)
    guest = await insert(conn, None, temporary=True)
    claimed = await auth.claim_address(conn, email, guest_claims(guest["id"]))
    assert claimed["id"] == guest["id"]
    assert await users_repo.get(conn, pending["id"]) is None


async def test_a_guest_claiming_again_keeps_its_own_claim(auth, conn):
    email = address()
    guest = await insert(conn, email, temporary=True)
    assert (await auth.claim_address(conn, email, guest_claims(guest["id"])))["id"] == guest["id"]
    assert (await users_repo.get(conn, guest["id"]))["email"] == email


async def test_tokens_that_are_not_a_current_guests_claim_nothing_for_it(auth, conn):
    email = address()
    guest = await insert(conn, None, temporary=True)
    account = await insert(conn, None, confirmed=True)
    for claims in (
        guest_claims(guest["id"], guest=False),  # a user token
        guest_claims(guest["id"], role=SERVICE_ROLE),  # a service token
        guest_claims(account["id"]),  # says guest, but the account is confirmed
        guest_claims(uuid.uuid4()),  # no such user
    ):
        assert await auth.claim_address(conn, email, claims) is None
