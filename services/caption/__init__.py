"""Captions: the caption.json schema, the chat-completions client and the two captioners."""
