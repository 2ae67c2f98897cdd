"""The OpenAI videos API driven by the official `openai` client against a real server: a client
nobody here wrote, so the paths, fields and shapes are OpenAI's, not our reading of them. The
jobs are tiny (64x64, a second at the demo's 8 fps, 1 to 3 steps) to stay fast on a CPU."""

from __future__ import annotations

import httpx
import openai
import pytest

from i2vkit.errors import JobNotFoundError
from i2vkit.runtime.server.store import NEWEST_BEFORE, JobStore
from tests.helpers.api import png, until
from tests.helpers.video import read_mp4

# the client marks the whole videos API deprecated (Sora's shutdown): it is still the protocol
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FAST = {"size": "64x64", "seconds": "1", "extra_body": {"steps": 3}}


def frame() -> tuple[str, bytes, str]:
    return ("first.png", png(64, 64), "image/png")


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    # no retries: the client retries 409, 429 and 5xx by itself, which would hide what we answer
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def test_create_poll_download_list_delete(client, server, tmp_path):
    video = client.videos.create_and_poll(
        prompt="a boat drifts", input_reference=frame(), poll_interval_ms=100, **FAST
    )
    assert video.status == "completed", video.error
    assert (video.model, video.size, video.seconds, video.progress) == ("demo", "64x64", "1", 100)
    assert video.prompt == "a boat drifts" and video.error is None
    assert video.completed_at is not None and video.completed_at >= video.created_at
    # one store: the same job through our own API, with what size, seconds and extra_body set
    job = httpx.get(f"{server.url}/v1/jobs/{video.id}", timeout=10).json()
    settings = job["settings"]
    assert (settings["width"], settings["height"], settings["frames"], settings["steps"]) == (
        64, 64, 8, 3,
    )  # fmt: skip

    path = tmp_path / "video.mp4"
    client.videos.download_content(video.id).write_to_file(path)
    assert read_mp4(path).shape == (8, 64, 64, 3)
    with pytest.raises(openai.NotFoundError, match="variant='thumbnail' is not made here"):
        client.videos.download_content(video.id, variant="thumbnail")

    assert video.id in [v.id for v in client.videos.list()]
    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    with pytest.raises(openai.NotFoundError, match=f"no video has the id '{video.id}'"):
        client.videos.retrieve(video.id)
    assert video.id not in [v.id for v in client.videos.list()]


def test_a_create_without_input_reference_says_the_image_is_needed(client):
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.videos.create(prompt="a boat drifts", **FAST)
    error = caught.value
    assert "input_reference is required: demo makes a video from an image" in str(error)
    assert (error.code, error.type) == ("invalid_value", "invalid_request_error")


@pytest.mark.parametrize(
    ("change", "kind", "message"),
    [
        ({"size": "100x64"}, openai.UnprocessableEntityError,
         "width=100 is not a multiple of 64; try width=128 (size=100x64 is width=100, height=64)"),
        ({"size": "big"}, openai.UnprocessableEntityError,
         "size='big' is not WIDTHxHEIGHT in pixels"),
        ({"seconds": "60"}, openai.UnprocessableEntityError,
         "seconds=60 is out of range; allowed: 0.25 to 20.125 (demo makes 2 to 161 frames"),
        ({"seconds": "soon"}, openai.UnprocessableEntityError, "seconds='soon' is not a number"),
        ({"model": "sora-2"}, openai.NotFoundError,
         "model 'sora-2' is not served here; this server serves 'demo'"),
        ({"extra_body": {"steps": 0}}, openai.UnprocessableEntityError,
         "steps=0 is out of range; allowed: 1 to 150"),
        ({"extra_body": {"frames": 9}}, openai.UnprocessableEntityError,
         "frames is set by seconds here"),
        ({"extra_body": {"stepz": 3}}, openai.UnprocessableEntityError,
         "unknown setting 'stepz'"),
    ],
)  # fmt: skip
def test_an_impossible_value_is_refused_naming_it(client, change, kind, message):
    with pytest.raises(kind) as caught:
        client.videos.create(prompt="x", input_reference=frame(), **{**FAST, **change})
    assert message in caught.value.message


def test_a_failed_video_says_why_and_has_no_content(client):
    # the shared server's fault hook runs every 128x128 job out of memory (tests/helpers/faults)
    video = client.videos.create_and_poll(
        prompt="x", input_reference=frame(), poll_interval_ms=100, **{**FAST, "size": "128x128"}
    )
    assert video.status == "failed" and video.error is not None
    assert video.error.code == "oom" and "out of memory" in video.error.message.lower()
    with pytest.raises(openai.NotFoundError) as caught:
        client.videos.download_content(video.id)
    assert f"video {video.id} has no content: it is failed" in caught.value.message


def test_the_list_pages_by_cursor_in_either_order(client):
    tiny = {"size": "64x64", "seconds": "0.25", "extra_body": {"steps": 1}}
    made = [client.videos.create(prompt=str(i), input_reference=frame(), **tiny).id
            for i in range(3)]  # fmt: skip
    newest_first = [v.id for v in client.videos.list(limit=1) if v.id in made]  # 1 a page
    assert newest_first == made[::-1]
    assert [v.id for v in client.videos.list(limit=2, order="asc") if v.id in made] == made
    page = client.videos.list(limit=2)
    assert len(page.data) == 2 and page.has_more and page.last_id == page.data[-1].id
    with pytest.raises(openai.NotFoundError, match="no video has the id"):
        client.videos.list(after="A" * 22)
    with pytest.raises(openai.UnprocessableEntityError, match="limit=101 is out of range"):
        client.videos.list(limit=101)
    for video_id in made:  # leave the queue empty for the next test
        assert client.videos.poll(video_id, poll_interval_ms=100).status == "completed"


def test_the_store_pages_every_job_by_its_cursor_through_an_index(tmp_path):
    """The list used to read the newest 10,000 jobs and cut its page there: older ones could
    not be reached. Now a cursor on (created, id): every job once, ties in time included, and
    SQLite searches its index instead of scanning the table."""
    store = JobStore(tmp_path, 4)
    rows = [(f"{i:022d}", "succeeded", "{}", 1000.0 + i // 3) for i in range(10_050)]  # ties
    store._db.executemany("INSERT INTO jobs (id, status, settings, created) VALUES (?,?,?,?)",
                          rows)  # fmt: skip
    for oldest_first in (False, True):
        seen, after = [], None
        while page := store.page(after, 100, oldest_first):
            seen += [job.id for job in page]
            after = page[-1].id
        expected = [r[0] for r in rows]
        assert seen == (expected if oldest_first else expected[::-1])
    plan = [row["detail"] for row in store._db.execute("EXPLAIN QUERY PLAN " + NEWEST_BEFORE,
                                                      (1.0, "", 5))]  # fmt: skip
    assert any("INDEX jobs_created" in step for step in plan), plan
    with pytest.raises(JobNotFoundError):
        store.page("B" * 22, 5)
    store.close()


def test_deleting_a_running_video_cancels_it_then_deletes_it(client):
    slow = {**FAST, "extra_body": {"steps": 150}}
    video_id = client.videos.create(prompt="x", input_reference=frame(), **slow).id

    def midway() -> openai.types.Video | None:
        video = client.videos.retrieve(video_id)
        return video if video.status == "in_progress" and 0 < video.progress < 100 else None

    until(midway, f"video {video_id} in progress", timeout=60)
    with pytest.raises(openai.ConflictError, match="it is cancelled and stops at its next step"):
        client.videos.delete(video_id)
    stopped = client.videos.poll(video_id, poll_interval_ms=100)
    assert stopped.status == "failed" and stopped.error is not None
    assert stopped.error.code == "cancelled"
    assert client.videos.delete(video_id).deleted
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video_id)


def test_calls_it_does_not_serve_are_a_404_that_says_so(client):
    with pytest.raises(openai.NotFoundError, match="is not served here; i2vkit's videos API"):
        client.videos.remix("A" * 22, prompt="x")
