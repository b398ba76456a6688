"""Datasets: the built-ins with their schemas."""

from fastapi import APIRouter

from api.deps import PrincipalDep
from core.services.datasets import DatasetService

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.get("")
def list_datasets(principal: PrincipalDep) -> list[dict]:
    return DatasetService().all()


@router.get("/{dataset_id}")
def get_dataset(dataset_id: str, principal: PrincipalDep) -> dict:
    return DatasetService().schema(dataset_id)
