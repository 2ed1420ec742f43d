"""The worker's declarations (``streams/app.py``) that no run through the broker shows."""

from __future__ import annotations

from dataclasses import fields

from streams.app import ENVELOPES, STREAM_BUFFER, Topics, faust_app
from tilannekuva.config import Settings


def test_each_agent_buffers_a_few_batches_of_envelopes_not_faust_s_default(tmp_path):
    # Faust's bound counts messages; ours are envelopes of up to 250 items, and a
    # catch-up filled the default's thousands of them ahead of every agent.
    settings = Settings(data_dir=str(tmp_path))
    app = faust_app(settings, "127.0.0.1", 6066)
    topics = Topics.declare(app, settings)
    consumed = ("by_id", "by_person", "family_inputs", "vectors")
    for name in consumed:
        stream = getattr(topics, name).clone(is_iterator=True)
        assert stream.queue.maxsize == STREAM_BUFFER, name
    assert ENVELOPES <= STREAM_BUFFER < app.conf.stream_buffer_maxsize
    # every internal topic is one of them: a new one declared with app.topic would not be
    internal = {f.name for f in fields(Topics) if getattr(topics, f.name).internal}
    assert internal == set(consumed)
