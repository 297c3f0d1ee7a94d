"""The service's answers to what first-time users send (issue 13, items 7 and 9): JSON bodies
without ``Content-Type: application/json`` (curl's ``-d``), bodies that are not JSON (415),
misspelled metric names (422, nothing stored) and replayed reports (``changed: false``)."""

from __future__ import annotations

import json

import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from pex_tuner.service import create_app  # noqa: E402

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
OBJECTIVES = {"engagement": "max", "retention": "max", "cost": "min", "long_term": "max"}
# the objectives (long_term is online-only) and the synthetic experiment's outcomes
ACCEPTED = ["cost", "engagement", "long_term", "retention"]
NOT_JSON = (
    "the request body is not valid JSON; send a JSON object with the header "
    "'Content-Type: application/json'"
)
VALUE = {"mean": 1.0, "sem": 0.1, "n": 100}


@pytest.fixture(scope="module")
def served(offline_dir, tmp_path_factory):
    """A client, and a run created the way the README's curl does (form content type)."""
    db = tmp_path_factory.mktemp("svc_inputs") / "svc.db"
    client = TestClient(create_app(f"sqlite:///{db}", tokens=TOKEN))
    body = {"tuner_dir": str(offline_dir), "n_candidates": 2, "objectives": OBJECTIVES}
    r = client.post("/v1/runs", content=json.dumps(body), headers={**AUTH, **FORM})
    assert r.status_code == 201, r.text
    run_id = r.json()["run_id"]
    issued = client.post(f"/v1/runs/{run_id}/next-batch", json={"size": 2}, headers=AUTH)
    assert [t["trial_id"] for t in issued.json()["trials"]] == [0, 1]
    return client, run_id


def _report(client, run_id, tid, metrics, key, headers=None):
    return client.post(
        f"/v1/runs/{run_id}/trials/{tid}/results",
        content=json.dumps({"metrics": metrics}),
        headers={**AUTH, "Idempotency-Key": key, **(headers or {})},
    )


def test_json_without_the_json_content_type_is_accepted(served):
    client, run_id = served  # the run itself was created with curl's form content type
    nothing = client.post(
        f"/v1/runs/{run_id}/next-batch", content=b'{"size": 1}', headers=AUTH
    )  # no Content-Type header at all
    assert nothing.status_code == 200 and nothing.json()["state"] == "awaiting_results"
    r = _report(client, run_id, 0, {"engagement": VALUE}, key="form", headers=FORM)
    assert r.status_code == 200 and r.json()["changed"] is True
    r = _report(client, run_id, 0, {"retention": VALUE}, key="plain", headers={"Content-Type": ""})
    assert r.status_code == 200 and r.json()["missing_metrics"] == ["cost", "long_term"]
    # JSON that fails validation is still a 422, whatever the header
    bad = client.post(f"/v1/runs/{run_id}/next-batch", content=b'{"size": 0}', headers=AUTH)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "size"]


def test_a_body_that_is_not_json_is_415_naming_the_header(served):
    client, run_id = served
    url = f"/v1/runs/{run_id}/next-batch"
    r = client.post(url, data={"size": "1"}, headers=AUTH)  # a real form: size=1
    assert r.status_code == 415
    assert r.json() == {
        "detail": f"{NOT_JSON} (it was sent as 'application/x-www-form-urlencoded')"
    }
    r = client.post(url, content=b"size=1", headers=AUTH)
    assert r.status_code == 415
    assert r.json() == {"detail": f"{NOT_JSON} (it was sent with no Content-Type)"}
    # authentication comes first; a body sent as JSON that does not parse stays a 422
    assert client.post(url, content=b"size=1").status_code == 401
    r = client.post(url, content=b"size=1", headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    # the OpenAPI schema documents the 415 on every operation with a body, and only there
    paths = client.get("/openapi.json").json()["paths"]
    assert "415" in paths["/v1/runs/{run_id}/next-batch"]["post"]["responses"]
    assert "415" not in paths["/v1/runs/{run_id}"]["get"]["responses"]


def test_unknown_metric_names_are_422_and_nothing_is_stored(served):
    client, run_id = served
    r = _report(client, run_id, 1, {"engagment": VALUE, "cost": VALUE, "visits": VALUE}, "typo")
    assert r.status_code == 422
    assert r.json() == {
        "detail": f"unknown metric name(s) ['engagment', 'visits']; this run accepts "
        f"{ACCEPTED} (its objectives, constraints and offline outcomes); declare an "
        "online-only metric in 'objectives' or 'constraints' when creating the run"
    }
    run = client.get(f"/v1/runs/{run_id}", headers=AUTH).json()
    assert run["accepted_metrics"] == ACCEPTED
    assert run["trials"][1]["metrics"] == {}  # not even the known 'cost'
    assert run["counts"]["completed"] == 0
    assert client.get(f"/v1/runs/{run_id}/pareto", headers=AUTH).json()["frontier"] == []
    # the key was not used up: the corrected report goes through under it
    r = _report(client, run_id, 1, {"engagement": VALUE, "cost": VALUE}, "typo")
    assert r.status_code == 200 and r.json()["replayed"] is False
    # online-only metrics declared as objectives are accepted
    r = _report(client, run_id, 1, {"long_term": VALUE, "retention": VALUE}, "lt")
    assert r.status_code == 200 and r.json()["status"] == "completed"


def test_a_replayed_report_has_not_changed_anything(served):
    client, run_id = served
    first = _report(client, run_id, 0, {"cost": VALUE}, key="replay")
    assert first.status_code == 200
    assert first.json() == {
        "trial_id": 0,
        "status": "running",
        "changed": True,
        "missing_metrics": ["long_term"],
        "replayed": False,
    }
    again = _report(client, run_id, 0, {"cost": VALUE}, key="replay")
    assert again.status_code == 200
    assert again.json() == {**first.json(), "changed": False, "replayed": True}


def test_runs_name_their_parameters_by_outcome_and_arm(served):
    client, run_id = served
    run = client.get(f"/v1/runs/{run_id}", headers=AUTH).json()
    names = run["parameter_names"]
    assert set(names) == set(run["bounds"])
    assert names["w_1"] == "w[retention]" and names["b_2"] == "b[arm_2]"
