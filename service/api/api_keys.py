"""`/v1/api-keys`: create (the key is shown once), list, revoke."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, status

from service import security
from service.deps import AdminDep, ConnDep
from service.errors import NotFoundError
from service.queries import api_keys
from service.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyOut
from service.schemas.common import Limit, Offset

router = APIRouter(prefix="/api-keys", tags=["api-keys"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
def create_key(body: ApiKeyCreate, conn: ConnDep, _: AdminDep) -> ApiKeyCreated:
    token = security.new_token(security.API_KEY_PREFIX)
    with conn.transaction():
        row = api_keys.insert(conn, body.name, body.role, security.digest(token),
                              security.display_prefix(token))
    return ApiKeyCreated(**row, key=token)


@router.get("", response_model=ApiKeyList)
def list_keys(conn: ConnDep, _: AdminDep, limit: Limit = 100, offset: Offset = 0) -> ApiKeyList:
    rows = api_keys.list_keys(conn, limit + 1, offset)
    more = len(rows) > limit
    return ApiKeyList(items=[ApiKeyOut(**r) for r in rows[:limit]], limit=limit, offset=offset,
                      next_offset=offset + limit if more else None)


@router.delete("/{key_id}", response_model=ApiKeyOut)
def revoke_key(key_id: UUID, conn: ConnDep, _: AdminDep) -> ApiKeyOut:
    with conn.transaction():
        row = api_keys.revoke(conn, key_id)
    security.forget_all()  # the key stops at once in this process (cached principals)
    if row is None:
        raise NotFoundError(f"API key {key_id} does not exist")
    return ApiKeyOut(**row)
