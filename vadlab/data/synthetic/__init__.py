"""A seeded, deterministic walkway surveillance scene with typed anomalies, written in the common layout.

A fixed camera looks at a lawn with a paved walkway across it. Pedestrians (small articulated figures: legs
and arms swinging, a body, a head) walk along the walkway in both directions, alone or in small groups, enter
and leave the view. Trees sway in the wind and a lamp post occludes part of the walkway. Every video draws its
own sensor noise, camera gain flicker, slow lighting drift, colour tint, wind strength and crowd density.

Test videos insert anomalies of named types (`ANOMALY_TYPES`), each with a pixel mask of the anomalous object:

- ``speed``: a runner or a cyclist on the walkway, 2.5-4x walking speed (it looks normal, it moves too fast)
- ``appearance``: a cart or a small vehicle at walking speed (it looks wrong, it moves like everyone else)
- ``location``: a person walking on the grass
- ``direction``: a person crossing the walkway perpendicular to it
- ``static_object``: a bag that a passer-by leaves behind: it appears, then stays still

Frame labels are derived from the masks (1 exactly when some anomalous pixel is visible), so they agree by
construction; `types` holds "normal" or the type name per frame. `abnormal/` holds a pool of short labelled
clips of every type, generated from their own seeds (never cut from the test videos), for DREAM's protocol.

Modules: `config` (`SynthConfig`, `PRESETS`), `render` (painter, scene, actors, one frame), `events` (one function
per anomaly type, `EVENTS`), `generate` (videos, `synthesize`), `montage` (a PNG grid of every type).

>>> layout = synthesize("data/synth", "tiny", seed=0)
"""

from vadlab.data.synthetic.config import GENERATOR, GENERATOR_VERSION, PRESETS, SynthConfig
from vadlab.data.synthetic.events import ANOMALY_TYPES, EVENTS
from vadlab.data.synthetic.generate import synthesize
from vadlab.data.synthetic.montage import montage

__all__ = ["ANOMALY_TYPES", "EVENTS", "GENERATOR", "GENERATOR_VERSION", "PRESETS", "SynthConfig", "synthesize",
           "montage"]
