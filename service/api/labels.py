"""`/v1/machines/{id}/labels`: time ranges of a machine's windows marked with a class
(classifier training data)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from pydantic import AwareDatetime

from service.deps import AdminDep, ConnDep, ReaderDep, require_machine
from service.errors import ConflictError, NotFoundError, UnprocessableError
from service.queries import labels
from service.schemas.classification import LABEL_PATTERN, LabelIn, LabelList, LabelOut
from service.schemas.common import Limit, Offset

router = APIRouter(prefix="/machines/{machine_id}/labels", tags=["labels"])


def label_out(row: dict[str, Any]) -> LabelOut:
    return LabelOut(id=row["id"], machine_id=row["machine_id"], start=row["start_at"],
                    end=row["end_at"], label=row["label"], created_at=row["created_at"])


def _conflict(body: LabelIn, found: list[dict[str, Any]]) -> ConflictError:
    first = found[0]
    return ConflictError(
        f"[{body.start.isoformat()}, {body.end.isoformat()}) overlaps label {first['id']} "
        f"({first['label']!r}, [{first['start_at'].isoformat()}, "
        f"{first['end_at'].isoformat()})): a window cannot be both {body.label!r} and "
        f"{first['label']!r}; delete or shorten one of them",
        conflicts=[{"id": str(r["id"]), "label": r["label"], "start": r["start_at"].isoformat(),
                    "end": r["end_at"].isoformat()} for r in found])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=LabelOut)
def create_label(machine_id: UUID, body: LabelIn, conn: ConnDep, _: AdminDep) -> LabelOut:
    """Overlapping a range of the same label is fine; of another label it is a 409."""
    with conn.transaction():
        require_machine(conn, machine_id)
        labels.lock_labels(conn, machine_id)
        found = labels.conflicts(conn, machine_id, body.start, body.end, body.label)
        if found:
            raise _conflict(body, found)
        if not labels.has_windows(conn, machine_id, body.start, body.end):
            raise UnprocessableError(
                f"machine {machine_id} has no stored windows in [{body.start.isoformat()}, "
                f"{body.end.isoformat()}): a label marks windows that exist (a window counts "
                f"when its centre lies in the range); upload the data first")
        row = labels.insert_label(conn, machine_id, body.start, body.end, body.label)
    return label_out(row)


@router.get("", response_model=LabelList)
def list_labels(machine_id: UUID, conn: ConnDep, _: ReaderDep,
                label: Annotated[str | None, Query(pattern=LABEL_PATTERN)] = None,
                start: Annotated[AwareDatetime | None, Query()] = None,
                end: Annotated[AwareDatetime | None, Query()] = None,
                limit: Limit = 100, offset: Offset = 0) -> LabelList:
    """Ranges overlapping [start, end) (either bound optional), oldest first."""
    require_machine(conn, machine_id)
    rows = labels.list_labels(conn, machine_id, {"label": label, "start": start, "end": end},
                              limit + 1, offset)
    more = len(rows) > limit
    return LabelList(items=[label_out(r) for r in rows[:limit]], limit=limit, offset=offset,
                     next_offset=offset + limit if more else None)


@router.delete("/{label_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_label(machine_id: UUID, label_id: UUID, conn: ConnDep, _: AdminDep) -> Response:
    with conn.transaction():
        row = labels.delete_label(conn, machine_id, label_id)
    if row is None:
        raise NotFoundError(f"label {label_id} of machine {machine_id} does not exist")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
