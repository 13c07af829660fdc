"""Hypothesis against the running tracking service: random manual entries for one user,
each accepted or refused exactly as a plain interval model says (end > start, at most
24 h, no overlap with the user's accepted entries, [) bounds so back-to-back is fine),
and the database holds exactly the accepted ones. Bounded: a few dozen examples.

Synchronous gRPC on purpose: hypothesis drives a plain function, with no event loop.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.infra import RunningStack
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc
from timetracking.tracking.v1 import tracking_pb2 as tpb
from timetracking.tracking.v1 import tracking_pb2_grpc

pytestmark = pytest.mark.integration

# Minutes after a base three days ago (nothing ends in the future);
# lengths up to a bit over the 24 h cap, and some <= 0.
spans = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=36 * 60),  # start
        st.integers(min_value=-30, max_value=25 * 60),  # length
    ),
    min_size=1,
    max_size=8,
)


def _ts(dt: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    t = Timestamp()
    t.FromDatetime(dt)
    return t


@pytest.fixture(scope="module")
def channels(running_services: RunningStack):
    cfg = running_services.config
    with (
        grpc.insecure_channel(cfg.grpc_target("projects")) as projects,
        grpc.insecure_channel(cfg.grpc_target("tracking")) as tracking,
    ):
        yield projects_pb2_grpc.ProjectsServiceStub(projects), tracking_pb2_grpc.TrackingServiceStub(tracking)


@pytest.fixture(scope="module")
def project_id(channels) -> str:
    projects, _ = channels
    client = projects.CreateClient(
        ppb.CreateClientRequest(name=f"Overlap {uuid.uuid4().hex[:8]}", currency="EUR")
    )
    project = projects.CreateProject(
        ppb.CreateProjectRequest(
            client_id=client.client_id,
            name="Overlap",
            billing_type=ppb.BILLING_TYPE_HOURLY,
            default_hourly_rate="50",
        )
    )
    return project.project_id


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(minutes=spans)
def test_entries_are_accepted_exactly_when_the_interval_model_says(
    channels, project_id: str, minutes: list[tuple[int, int]]
) -> None:
    projects, tracking = channels
    user = projects.CreateUser(
        ppb.CreateUserRequest(
            name="Overlap",
            email=f"o-{uuid.uuid4().hex[:12]}@example.com",
            role=ppb.ROLE_EMPLOYEE,
            timezone="UTC",
        )
    )
    projects.AddProjectMember(ppb.AddProjectMemberRequest(project_id=project_id, user_id=user.user_id))
    base = (datetime.now(UTC) - timedelta(days=3)).replace(second=0, microsecond=0)
    accepted: list[tuple[datetime, datetime]] = []
    for offset, length in minutes:
        start = base + timedelta(minutes=offset)
        end = start + timedelta(minutes=length)
        if end <= start or end - start > timedelta(hours=24):
            expected = "end_time"
        elif any(start < b and a < end for a, b in accepted):
            expected = "overlap"
        else:
            expected = None
        request = tpb.CreateManualEntryRequest(
            actor_user_id=user.user_id,
            user_id=user.user_id,
            project_id=project_id,
            start_time=_ts(start),
            end_time=_ts(end),
        )
        try:
            tracking.CreateManualEntry(request)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
            md = dict(err.trailing_metadata() or ())
            fields = {v["field"] for v in json.loads(md.get("field-violations", "[]"))}
            if expected == "overlap":
                assert md.get("error-code") == "entry_overlaps" and fields == {"start_time", "end_time"}
            else:
                assert expected == "end_time" and fields == {"end_time"}, (expected, err.details())
            continue
        assert expected is None, (expected, start, end, accepted)
        accepted.append((start, end))
    listed = tracking.ListEntries(tpb.ListEntriesRequest(user_id=user.user_id, page_size=50))
    stored = sorted(
        (e.start_time.ToDatetime(tzinfo=UTC), e.end_time.ToDatetime(tzinfo=UTC)) for e in listed.entries
    )
    assert stored == sorted(accepted)  # refused requests wrote nothing
