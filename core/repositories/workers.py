"""Queries on the worker registry (which queues are consumed, so which devices exist)."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import WorkerNode, utcnow
from core.repositories import dialect_insert


class WorkerRepository:
    def __init__(self, session: Session):
        self.session = session

    def announce(self, name: str, queues: list[str]) -> None:
        now = utcnow()
        insert = dialect_insert(self.session)
        statement = insert(WorkerNode).values(name=name, queues=queues, started_at=now,
                                              last_seen=now)
        self.session.execute(statement.on_conflict_do_update(
            index_elements=["name"], set_={"queues": queues, "last_seen": now}))

    def alive_count_by_queue(self, seen_after: datetime) -> dict[str, int]:
        counts: dict[str, int] = {}
        for queues in self.session.scalars(select(WorkerNode.queues)
                                           .where(WorkerNode.last_seen >= seen_after)):
            for queue in queues:
                counts[queue] = counts.get(queue, 0) + 1
        return counts

    def alive_queues(self, seen_after: datetime) -> set[str]:
        rows = self.session.scalars(select(WorkerNode.queues)
                                    .where(WorkerNode.last_seen >= seen_after))
        return {queue for queues in rows for queue in queues}
