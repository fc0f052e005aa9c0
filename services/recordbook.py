"""Keeps video and clip records as JSON in the artifact store.

Records are saved after every step, so a crash loses at most the item in
flight and a re-run resumes where the last one stopped.
"""

from __future__ import annotations

from services.records import ClipRecord, VideoRecord
from services.storage.base import ArtifactNotFound, ArtifactStore

VIDEOS = "records/videos"
CLIPS = "records/clips"


class RecordBook:
    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def load_video(self, source_id: str) -> VideoRecord | None:
        try:
            return VideoRecord.model_validate_json(self.store.get_bytes(f"{VIDEOS}/{source_id}.json"))
        except ArtifactNotFound:
            return None

    def save_video(self, video: VideoRecord) -> None:
        self.store.put_bytes(f"{VIDEOS}/{video.source_id}.json", video.model_dump_json(indent=2).encode())

    def load_clip(self, clip_id: str) -> ClipRecord | None:
        try:
            return ClipRecord.model_validate_json(self.store.get_bytes(f"{CLIPS}/{clip_id}.json"))
        except ArtifactNotFound:
            return None

    def load_clips(self, clip_ids: list[str]) -> list[ClipRecord]:
        """The records of these clips that the store has, in order."""
        return [c for c in (self.load_clip(i) for i in clip_ids) if c is not None]

    def save_clip(self, clip: ClipRecord) -> None:
        self.store.put_bytes(f"{CLIPS}/{clip.id}.json", clip.model_dump_json(indent=2).encode())

    def delete_clip(self, clip_id: str) -> None:
        """Forget a clip and its files (a re-clip with other settings made it stale)."""
        for key in self.store.list(f"annotations/{clip_id}/"):
            self.store.delete(key)
        self.store.delete(f"clips/{clip_id}.mp4")
        self.store.delete(f"{CLIPS}/{clip_id}.json")

    def all_video_keys(self) -> list[str]:
        return [key for key in self.store.list(f"{VIDEOS}/") if key.endswith(".json")]

    def load_video_key(self, key: str) -> VideoRecord:
        return VideoRecord.model_validate_json(self.store.get_bytes(key))

    def all_videos(self) -> list[VideoRecord]:
        return [self.load_video_key(key) for key in self.all_video_keys()]

    def all_clips(self) -> list[ClipRecord]:
        return [
            ClipRecord.model_validate_json(self.store.get_bytes(key))
            for key in self.store.list(f"{CLIPS}/")
            if key.endswith(".json")
        ]
