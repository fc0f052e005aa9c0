"""The verdict's record beside the annotations: ``qc_evidence.json`` (the tracker's evidence, written by the camera
stage and completed by the depth stage with the views' evidence), and the provenance line of the verdict columns."""

from __future__ import annotations

import json

from services.quality.evidence import TrackEvidence, ViewEvidence
from services.quality.columns import VERDICT_COLUMNS
from services.quality.verdict import Verdict

VERDICT_VERSION = "qc-verdict v1"


def evidence_json(track: TrackEvidence | None, views: ViewEvidence | None, verdict: Verdict) -> bytes:
    data = dict(track=track.to_json() if track else None, views=views.summary() if views else None,
                verdict=verdict.columns())
    return json.dumps(data, indent=1).encode()


def track_from_json(data: bytes | None) -> TrackEvidence | None:
    if not data:
        return None
    track = json.loads(data).get("track")
    return TrackEvidence.from_json(track) if track else None


def provenance(with_views: bool) -> dict[str, str]:
    what = "tracker evidence and the frames re-projected through poses and depth" if with_views \
        else "tracker evidence (depth and masks not yet checked)"
    return {",".join(VERDICT_COLUMNS): f"{VERDICT_VERSION} (services.quality: {what})"}
