"""Datasets: upload (multipart, streamed), list, schema with a preview, opening to all, delete."""

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from api.deps import PrincipalDep, SessionDep, SettingsDep
from api.schemas.datasets import DatasetOut, DatasetPatch
from api.uploads import receive_upload
from core.services.datasets import DatasetService

router = APIRouter(prefix="/datasets", tags=["datasets"])
# The upload, included with a body cap of its own (`api.uploads.upload_body_limit`).
upload_router = APIRouter(prefix="/datasets", tags=["datasets"])


@upload_router.post("", status_code=201, response_model=DatasetOut)
async def upload_dataset(request: Request, principal: PrincipalDep, session: SessionDep,
                         settings: SettingsDep, response: Response) -> DatasetOut:
    """Multipart fields: `file` (.csv, .npz or .zip of class folders), `target` (CSV),
    optional `format`, `name`, `description`, `task`, `image_size` (HxW), `channels` (1 or 3).
    The same content again, with the same name and description, answers 200 with the first
    upload."""
    async with receive_upload(request, settings) as upload:
        service = DatasetService(session, settings)
        # Parsing a large file takes seconds of CPU: off the event loop.
        dataset, created = await run_in_threadpool(
            service.upload, principal, upload.path, upload.filename, upload.content_type,
            upload.fields)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/datasets/{dataset['id']}"
    return DatasetOut.model_validate(dataset)


@router.get("", response_model=list[DatasetOut])
def list_datasets(principal: PrincipalDep, session: SessionDep,
                  settings: SettingsDep) -> list[DatasetOut]:
    return [DatasetOut.model_validate(d)
            for d in DatasetService(session, settings).visible(principal)]


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, principal: PrincipalDep, session: SessionDep,
                settings: SettingsDep) -> DatasetOut:
    return DatasetOut.model_validate(DatasetService(session, settings).describe(principal,
                                                                                dataset_id))


@router.patch("/{dataset_id}", response_model=DatasetOut)
def update_dataset(dataset_id: str, body: DatasetPatch, principal: PrincipalDep,
                   session: SessionDep, settings: SettingsDep) -> DatasetOut:
    """`{"public": true}` lets every member list, inspect and train on it; `false` closes it."""
    return DatasetOut.model_validate(
        DatasetService(session, settings).set_public(principal, dataset_id, body.public))


@router.delete("/{dataset_id}", status_code=204)
def delete_dataset(dataset_id: str, principal: PrincipalDep, session: SessionDep,
                   settings: SettingsDep) -> Response:
    DatasetService(session, settings).delete(principal, dataset_id)
    return Response(status_code=204)
