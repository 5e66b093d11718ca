"""The loopback Hub (tests/hub_server.py) answers the real huggingface_hub client like huggingface.co."""

from __future__ import annotations

import pytest

from support.hub_server import HubServer
from test_hf_token import new_token


@pytest.fixture
def hub(tmp_path, monkeypatch):
    good = new_token()
    repos = {"org/ok": {"status": "ok", "siblings": ["model_index.json"], "files": {"model_index.json": b'{"a": 1}'}},
             "org/gated": {"status": "gated", "siblings": ["model_index.json"]},
             "org/gone": {"status": "deleted"}, "org/secret": {"status": "private", "access": [good]}}
    with HubServer(tokens={good: {"name": "alice", "role": "read"}}, repos=repos) as server:
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        server.good = good
        yield server


def test_model_info_download_and_errors_through_the_real_client(hub):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    api = HfApi(endpoint=hub.url)
    info = api.model_info("org/ok", token=False)
    assert [s.rfilename for s in info.siblings] == ["model_index.json"]
    path = hf_hub_download("org/ok", "model_index.json", endpoint=hub.url, token=False)
    assert open(path, "rb").read() == b'{"a": 1}'
    with pytest.raises(GatedRepoError):
        api.model_info("org/gated", token=hub.good)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/gone", token=False)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/secret", token=False)
    assert api.model_info("org/secret", token=hub.good).id == "org/secret"
    with pytest.raises(HfHubHTTPError, match="Invalid credentials in Authorization header"):
        api.model_info("org/ok", token=new_token())  # a bad token breaks public repos too
    assert api.whoami(token=hub.good)["auth"]["accessToken"]["role"] == "read"
    assert ("GET", "/api/models/org/ok", False) in hub.requests
