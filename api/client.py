"""A small HTTP client of the REST API, used by ``lookups campaign``."""

from __future__ import annotations

import httpx

from api.schemas import CampaignAccepted, CampaignPublic
from lookups import LookupsError
from services.campaigns.config import CampaignConfig
from services.campaigns.results import CampaignResults


class ApiError(LookupsError):
    """The API refused a request or could not be reached."""


class LookupsClient:
    def __init__(self, base_url: str, token: str | None = None, transport: httpx.BaseTransport | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, transport=transport, timeout=60.0)

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ApiError(f"cannot reach the API at {self._http.base_url}: {error}") from error
        if response.is_error:
            try:
                detail = response.json()["detail"]
            except (ValueError, KeyError, TypeError):
                detail = response.text[:500]
            raise ApiError(f"{method} {path}: HTTP {response.status_code}: {detail}")
        return response

    def submit(self, config: CampaignConfig) -> CampaignAccepted:
        return CampaignAccepted.model_validate(
            self._request("POST", "/v1/campaigns", json=config.model_dump(mode="json")).json())

    def status(self, campaign_id: str) -> CampaignPublic:
        return CampaignPublic.model_validate(self._request("GET", f"/v1/campaigns/{campaign_id}").json())

    def results(self, campaign_id: str, skip: int = 0, limit: int = 20) -> CampaignResults:
        return CampaignResults.model_validate(self._request(
            "GET", f"/v1/campaigns/{campaign_id}/results", params={"skip": skip, "limit": limit}).json())

    def cancel(self, campaign_id: str) -> CampaignPublic:
        return CampaignPublic.model_validate(self._request("POST", f"/v1/campaigns/{campaign_id}/cancel").json())

    def resume(self, campaign_id: str) -> CampaignPublic:
        return CampaignPublic.model_validate(self._request("POST", f"/v1/campaigns/{campaign_id}/resume").json())

    def report(self, campaign_id: str) -> str:
        return self._request("GET", f"/v1/campaigns/{campaign_id}/report").text
