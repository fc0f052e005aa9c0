"""Valid model answers for the tests."""

from __future__ import annotations

VISION = {
    "CamMotion": "The camera pushes slowly forward down a corridor, then pans left towards a window.",
    "SceneDesc": "A bright office corridor with white walls, a wooden floor and a window at the end.",
}

STRUCTURED = {
    "OptCamMotion": "The camera moves forward along the corridor at a steady pace, then turns left.",
    "SceneSummary": "A clean, bright office corridor with white walls and a window at its end.",
    "MotionTrends": ["forward translate", "left pan"],
    "SceneTags": ["corridor", "office", "daylight"],
    "ShotImmersion": "We glide down a sunlit corridor, the window growing ahead as the view swings left.",
    "CategoryTag": {
        "sceneType": {"first": "Interior", "second": "Office Corridor"},
        "lighting": "Bright",
        "timeOfDay": "Daytime",
        "weather": "Unknown",
        "crowdDensity": "Deserted",
    },
}
